/**
 * Why a model could not be imported for training, with where: the file, and the node (and its op) or value the
 * problem is at. Bad input the user can act on (re-export, freeze, replace an op): exit code 2.
 */
export class ImportError extends Error {
  override name = "ImportError";
  readonly exitCode = 2;
  constructor(
    message: string,
    readonly where: { file?: string; node?: string; opType?: string; value?: string } = {},
  ) {
    const at = [
      where.file,
      where.node && `node '${where.node}'${where.opType ? ` (${where.opType})` : ""}`,
      where.value && `value '${where.value}'`,
    ].filter(Boolean);
    super(at.length ? `${at.join(", ")}: ${message}` : message);
  }
}
