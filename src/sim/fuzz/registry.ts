/**
 * The fuzz registry: one target per decoder that takes bytes or JSON from outside, most exposed
 * first (HTTP bodies, the CBOR and PKI core, the schemes' messages, frames, the secure element,
 * tokens, files). The schemes' decoders come from each scheme's `wire()`, read through the registry.
 */
import { coreTargets } from './targets-core.ts';
import { schemeTargets } from './targets-schemes.ts';
import { FUZZ_GROUPS, type FuzzTarget } from './target.ts';

/** Every target, ordered by group (most exposed first), then by name. */
export async function allTargets(): Promise<FuzzTarget[]> {
  const targets = [...coreTargets(), ...(await schemeTargets())];
  const rank = (t: FuzzTarget) => FUZZ_GROUPS.indexOf(t.group);
  return targets.sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The targets whose name is `only` or starts with `only/` or `only` (a group, a scheme, a whole name). */
export function selectTargets(targets: readonly FuzzTarget[], only: string | undefined): FuzzTarget[] {
  if (only === undefined) return [...targets];
  return targets.filter((t) => t.name === only || t.name.startsWith(only));
}
