/** Bad usage or bad input the user can fix: exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
