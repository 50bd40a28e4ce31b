/**
 * The error autodiff raises for graphs it cannot differentiate: it names the node and its op type so the user can
 * find the layer (and, for a missing rule, knows which op to replace or freeze).
 */
export class AutodiffError extends Error {
  override name = "AutodiffError";
  constructor(
    message: string,
    readonly where: { node?: string; opType?: string; value?: string } = {},
  ) {
    const at = where.node ? `node '${where.node}'${where.opType ? ` (${where.opType})` : ""}: ` : "";
    super(`${at}${message}`);
  }
}
