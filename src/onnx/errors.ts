/** The one error type the model layer raises for bad input: it says what was wrong and where. */
export class OnnxError extends Error {
  override name = "OnnxError";
  constructor(
    message: string,
    /** Where: the file, and a byte offset, node or value when known. */
    readonly where: { file?: string; offset?: number; node?: string; value?: string } = {},
  ) {
    super(
      [
        where.file,
        where.offset !== undefined ? `byte ${where.offset}` : undefined,
        where.node && `node '${where.node}'`,
      ]
        .filter(Boolean)
        .join(", ")
        .concat(where.file || where.offset !== undefined || where.node ? ": " : "", message),
    );
  }
}
