/**
 * The fuzz registry: one target per decoder that takes bytes or JSON from outside, most exposed
 * first (HTTP bodies, the CBOR and PKI core, the schemes' messages, frames, the secure element,
 * tokens, files). The schemes' decoders come from each scheme's `wire()`, read through the registry.
 */
import { coreTargets } from './targets-core.ts';
import { fileTargets } from './targets-files.ts';
import { closeHttpNode, httpTargets } from './targets-http.ts';
import { schemeTargets } from './targets-schemes.ts';
import { secureElementTargets } from './targets-se.ts';
import { FUZZ_GROUPS, type FuzzTarget } from './target.ts';

/**
 * Every target whose name starts with `only` (all without it), ordered by group (most exposed
 * first), then by name. The HTTP targets open a node: only when the selection can include them.
 */
export async function allTargets(only?: string | undefined): Promise<FuzzTarget[]> {
  const withHttp = only === undefined || only.startsWith('http') || 'http'.startsWith(only);
  const targets = selectTargets([...(withHttp ? await httpTargets() : []), ...coreTargets(), ...(await schemeTargets()), ...(await secureElementTargets()), ...fileTargets()], only);
  const rank = (t: FuzzTarget) => FUZZ_GROUPS.indexOf(t.group);
  return targets.sort((a, b) => rank(a) - rank(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Stops what the targets opened (the HTTP targets' node). */
export async function closeTargets(): Promise<void> {
  await closeHttpNode();
}

/** The targets whose name is `only` or starts with `only/` or `only` (a group, a scheme, a whole name). */
export function selectTargets(targets: readonly FuzzTarget[], only: string | undefined): FuzzTarget[] {
  if (only === undefined) return [...targets];
  return targets.filter((t) => t.name === only || t.name.startsWith(only));
}
