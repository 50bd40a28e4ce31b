/**
 * Errors of `qat export` / `qat verify` the user can act on. `ExportError` is bad input (exit 2): not a qat
 * checkpoint, a missing scale, a model the chosen target cannot take. A parity check below its thresholds is not an
 * error but a result (`ParityReport.passed`); the CLI turns it into exit code 1.
 */
export class ExportError extends Error {
  override name = "ExportError";
  constructor(
    message: string,
    /** Where: the file, and the node or tensor when known. */
    readonly where: { file?: string; node?: string; tensor?: string } = {},
    /** 2: bad input (default); 1: the export was made but failed a check (TensorRT structure). */
    readonly exitCode: 1 | 2 = 2,
  ) {
    const at = [
      where.file,
      where.node && `node '${where.node}'`,
      where.tensor && `tensor '${where.tensor}'`,
    ].filter(Boolean);
    super(at.length ? `${at.join(", ")}: ${message}` : message);
  }
}
