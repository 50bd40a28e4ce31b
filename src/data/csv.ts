import { CsvError, parse } from "csv-parse/sync";
import { ArrayDataset } from "./dataset.js";
import { DataError } from "./errors.js";
import { readInput } from "./files.js";

export interface CsvOptions {
  /** Dataset name (default: the file's path). */
  name?: string;
  /**
   * The label column: a header name, or a 0-based index (negative counts from the end). Default: the last column.
   */
  labelColumn?: string | number;
  /** Whether the first row is a header. "auto" (default): it is when a feature cell of it is text (not a number). */
  header?: boolean | "auto";
  /** Field delimiter (default ","). */
  delimiter?: string;
  /**
   * Fix the label → index mapping (pass the training set's `classNames` when opening its test set). A label equal
   * to a name maps to its position; otherwise an integer label is taken as the index.
   */
  classNames?: readonly string[];
  /** Number of classes for integer labels (default: largest label + 1). */
  numClasses?: number;
}

/** A CSV dataset also knows its feature column names (when the file has a header). */
export type CsvDataset = ArrayDataset & { readonly featureNames: string[] | undefined };

interface Row {
  record: string[];
  info: { lines: number };
}

/**
 * A CSV file of numeric feature columns and one label column. Labels are integers (class indices) or strings
 * (mapped to indices in sorted order, or by `classNames`). Every problem is reported with its line and column.
 */
export function readCsv(path: string, opts: CsvOptions = {}): CsvDataset {
  const text = readInput(path, "CSV file").toString("utf8");
  let rows: Row[];
  try {
    rows = parse(text, {
      delimiter: opts.delimiter ?? ",",
      bom: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
      info: true,
    }) as unknown as Row[];
  } catch (e) {
    if (e instanceof CsvError) {
      const line = (e as CsvError & { lines?: number }).lines;
      throw new DataError(`not a readable CSV file (${e.message}); fix the quoting at that line`, {
        file: path,
        ...(line !== undefined ? { line } : {}),
      });
    }
    throw e;
  }
  if (rows.length === 0)
    throw new DataError("the CSV file has no rows; give a file with data", { file: path });

  const width = rows[0]!.record.length;
  if (width < 2) {
    throw new DataError(
      `the first row has ${width} column; a dataset needs at least one feature column and a label column` +
        (opts.delimiter === undefined ? ' (is the delimiter something other than ","? set it)' : ""),
      { file: path, line: rows[0]!.info.lines },
    );
  }

  const firstLine = rows[0]!.record;
  const headerWanted = opts.header ?? "auto";
  let labelCol: number;
  if (typeof opts.labelColumn === "string") {
    if (headerWanted === false) {
      throw new DataError(`label column "${opts.labelColumn}" is a name but header is off; give an index`, {
        file: path,
      });
    }
    labelCol = firstLine.indexOf(opts.labelColumn);
    if (labelCol < 0) {
      throw new DataError(
        `no column named "${opts.labelColumn}" in the header (${firstLine.join(", ")}); pick one of these`,
        { file: path, line: rows[0]!.info.lines },
      );
    }
  } else {
    const c = opts.labelColumn ?? -1;
    labelCol = c < 0 ? width + c : c;
    if (!(Number.isInteger(labelCol) && labelCol >= 0 && labelCol < width)) {
      throw new DataError(`label column ${opts.labelColumn} does not exist: rows have ${width} columns`, {
        file: path,
      });
    }
  }

  const hasHeader =
    headerWanted === "auto"
      ? typeof opts.labelColumn === "string" ||
        firstLine.some((v, j) => j !== labelCol && v !== "" && !isNumber(v))
      : headerWanted;
  const body = hasHeader ? rows.slice(1) : rows;
  if (body.length === 0) throw new DataError("the CSV file has a header but no data rows", { file: path });

  const nFeat = width - 1;
  const features = new Float32Array(body.length * nFeat);
  const rawLabels: string[] = new Array(body.length);
  for (let i = 0; i < body.length; i++) {
    const { record, info } = body[i]!;
    if (record.length !== width) {
      throw new DataError(
        `row has ${record.length} columns, the ${hasHeader ? "header" : "first row"} has ${width}; ` +
          "every row needs the same number of fields",
        { file: path, line: info.lines },
      );
    }
    let f = i * nFeat;
    for (let j = 0; j < width; j++) {
      const cell = record[j]!;
      if (j === labelCol) {
        rawLabels[i] = cell;
        continue;
      }
      if (!isNumber(cell)) {
        throw new DataError(
          `feature value ${JSON.stringify(cell)} is not a number` +
            (hasHeader ? ` (column "${firstLine[j]}")` : "") +
            "; feature columns must be numeric",
          { file: path, line: info.lines, column: j + 1 },
        );
      }
      features[f++] = Number(cell);
    }
  }

  const { labels, classNames, numClasses } = mapLabels(rawLabels, body, labelCol, path, opts);
  const names = hasHeader ? firstLine.filter((_, j) => j !== labelCol) : undefined;
  const ds = new ArrayDataset({
    name: opts.name ?? path,
    inputShape: [nFeat],
    numClasses,
    data: features,
    labels,
    ...(classNames ? { classNames } : {}),
  });
  return Object.assign(ds, { featureNames: names });
}

function mapLabels(
  raw: string[],
  rows: Row[],
  labelCol: number,
  path: string,
  opts: CsvOptions,
): { labels: Int32Array; classNames?: readonly string[]; numClasses: number } {
  const labels = new Int32Array(raw.length);
  const where = (i: number) => ({ file: path, line: rows[i]!.info.lines, column: labelCol + 1 });
  const isInt = (s: string) => /^[+-]?\d+$/.test(s);

  if (opts.classNames) {
    const index = new Map(opts.classNames.map((n, i) => [n, i]));
    const n = opts.classNames.length;
    for (let i = 0; i < raw.length; i++) {
      const s = raw[i]!;
      const v = index.get(s) ?? (isInt(s) ? Number(s) : undefined);
      if (v === undefined || v < 0 || v >= n) {
        throw new DataError(
          `label ${JSON.stringify(s)} is not one of the ${n} classes (${opts.classNames.slice(0, 10).join(", ")}` +
            `${n > 10 ? ", …" : ""}); fix the label or the class list`,
          where(i),
        );
      }
      labels[i] = v;
    }
    return { labels, classNames: opts.classNames, numClasses: n };
  }

  if (raw.every(isInt)) {
    let max = -1;
    for (let i = 0; i < raw.length; i++) {
      const v = Number(raw[i]);
      const limit = opts.numClasses ?? Number.POSITIVE_INFINITY;
      if (v < 0 || v >= limit) {
        throw new DataError(
          `label ${v} is outside 0..${limit - 1}; class indices start at 0` +
            (opts.numClasses !== undefined ? ` and there are ${opts.numClasses} classes` : ""),
          where(i),
        );
      }
      labels[i] = v;
      if (v > max) max = v;
    }
    return { labels, numClasses: opts.numClasses ?? max + 1 };
  }

  const names = [...new Set(raw)].sort();
  const index = new Map(names.map((n, i) => [n, i]));
  for (let i = 0; i < raw.length; i++) labels[i] = index.get(raw[i]!)!;
  return { labels, classNames: names, numClasses: names.length };
}

function isNumber(s: string): boolean {
  if (s.length === 0) return false;
  const v = Number(s);
  return Number.isFinite(v);
}
