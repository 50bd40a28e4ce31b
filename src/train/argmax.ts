/** Index of the largest of `values[offset .. offset + n)`; ties go to the lower index. */
export function argmax(values: Float32Array, offset: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (values[offset + i]! > values[offset + best]!) best = i;
  return best;
}

/** Row-wise argmax of a [rows, n] buffer (n = values.length / rows). */
export function argmaxRows(values: Float32Array, rows: number): Int32Array {
  const n = rows ? values.length / rows : 0;
  const out = new Int32Array(rows);
  for (let i = 0; i < rows; i++) out[i] = argmax(values, i * n, n);
  return out;
}
