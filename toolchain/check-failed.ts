/** A check the model failed (parity below its thresholds): exit code 1, unlike bad input (2). */
export class CheckFailed extends Error {
  override name = "CheckFailed";
  readonly exitCode = 1;
}
