/** Where in the input a problem was found. Every field is optional; the message names what is known. */
export interface DataPlace {
  /** The file (or folder) that was being read. */
  file?: string;
  /** Byte offset in the file (after decompression for .gz files). */
  offset?: number;
  /** 1-based line in a text file. */
  line?: number;
  /** 1-based column (field number in a CSV row). */
  column?: number;
  /** Index of the sample (item) in the dataset. */
  item?: number;
}

/**
 * The one error the data layer raises for input a user can fix: it says what was wrong, where (file, byte offset,
 * line and column, image path) and, in the message, what to do about it.
 */
export class DataError extends Error {
  override name = "DataError";
  constructor(
    message: string,
    readonly where: DataPlace = {},
  ) {
    super(formatPlace(where) + message);
  }
}

function formatPlace(w: DataPlace): string {
  const parts: string[] = [];
  if (w.file !== undefined) parts.push(w.file);
  if (w.line !== undefined)
    parts.push(`line ${w.line}` + (w.column !== undefined ? `, column ${w.column}` : ""));
  else if (w.column !== undefined) parts.push(`column ${w.column}`);
  if (w.offset !== undefined) parts.push(`byte ${w.offset}`);
  if (w.item !== undefined) parts.push(`item ${w.item}`);
  return parts.length > 0 ? parts.join(", ") + ": " : "";
}
