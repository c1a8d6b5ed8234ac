/** Runs `work` over `items`, at most `limit` at once, in order; answers the results in the items' order. */
export async function inBatches<T, R>(items: readonly T[], limit: number, work: (item: T, k: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let k = 0; k < items.length; k += limit) out.push(...(await Promise.all(items.slice(k, k + limit).map((item, j) => work(item, k + j)))));
  return out;
}

/** The numbers 0 to `count` - 1, for `inBatches` over a count. */
export function upTo(count: number): number[] {
  return Array.from({ length: count }, (_, k) => k);
}
