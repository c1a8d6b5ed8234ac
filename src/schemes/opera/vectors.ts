/** Placeholder while being written. */
export function operaVectorFiles(): ReadonlyMap<string, string> {
  return new Map();
}
