/** Placeholder while being written. */
export function chainVectorFiles(): ReadonlyMap<string, string> {
  return new Map();
}
