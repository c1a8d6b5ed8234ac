/**
 * Every verb of `tally` but `node start` and `demo`, by its words: the operator's verbs, the shell's
 * wallet verbs, and the schemes' own verbs, built from the registry's schemes.
 */
import type { Scheme } from '../../schemes/index.ts';
import type { Verb } from '../plugin.ts';
import { audit } from './audit.ts';
import { TIER_VERBS } from './central-bank.ts';
import { operatorRemoveOem, operatorRevoke, operatorSettle } from './operator-actions.ts';
import { operatorMint } from './operator-mint.ts';
import { operatorOem } from './operator-oem.ts';
import { pay } from './pay.ts';
import { receive } from './receive.ts';
import { schemesVerb } from './schemes.ts';
import { simVerb } from './sim.ts';
import { sync } from './sync.ts';
import { walletBalance } from './wallet-balance.ts';
import { walletCreate } from './wallet-create.ts';
import { walletDeposit } from './wallet-deposit.ts';
import { walletHistory } from './wallet-history.ts';
import { walletRecover } from './wallet-recover.ts';
import { walletWithdraw } from './wallet-withdraw.ts';
import { runsShellVerb, schemeVerb, shellVerb, type ShellVerbSpec, type VerbCapabilities } from './wallet-verb.ts';

/** The shell's verbs that run on one wallet, in the order `tally --help` lists them. */
const SHELL_VERBS: readonly ShellVerbSpec[] = [walletBalance, walletDeposit, walletWithdraw, walletRecover];
/** Shell verbs listed after the schemes' own verbs of the same kind. */
const PAYMENT_VERBS: readonly ShellVerbSpec[] = [pay, receive, sync];

/** Builds the table of verbs for `schemes`. */
export function buildVerbs(schemes: readonly Scheme[]): Record<string, Verb> {
  const own = [...new Set(schemes.flatMap((s) => Object.keys(s.cli.verbs ?? {})))];
  const needs = new Map<string, (scheme: Scheme) => boolean>([
    ['wallet create', (scheme) => scheme.cli.handlers.create !== undefined],
    ['wallet history', () => true],
  ]);
  const needed = (): VerbCapabilities => needs;
  for (const spec of [...SHELL_VERBS, ...PAYMENT_VERBS]) {
    // pay takes a token or a live link: either capability offers it.
    const capabilities = spec.verb === 'pay' ? (['token-payments', 'link-payments'] as const) : [spec.capability?.({}, []) ?? null];
    needs.set(spec.words, (scheme) => runsShellVerb(scheme, spec, capabilities));
  }
  for (const words of own) needs.set(words, (scheme) => { const verb = scheme.cli.verbs?.[words]; return verb !== undefined && scheme.capabilities.includes(verb.capability); });
  return {
    'operator mint': operatorMint(schemes),
    'operator oem': operatorOem(schemes),
    'operator revoke': operatorRevoke,
    'operator settle': operatorSettle,
    'operator remove-oem': operatorRemoveOem,
    ...Object.fromEntries(schemes.flatMap((s) => Object.entries(s.cli.operatorVerbs ?? {}))),
    audit,
    ...TIER_VERBS,
    schemes: schemesVerb(schemes, needed),
    'wallet create': walletCreate(schemes),
    ...Object.fromEntries(SHELL_VERBS.slice(0, 1).map((spec) => [spec.words, shellVerb(spec, schemes, needed)])),
    'wallet history': walletHistory,
    ...Object.fromEntries(SHELL_VERBS.slice(1).map((spec) => [spec.words, shellVerb(spec, schemes, needed)])),
    ...Object.fromEntries(own.map((words) => [words, schemeVerb(words, schemes, needed)])),
    ...Object.fromEntries(PAYMENT_VERBS.map((spec) => [spec.words, shellVerb(spec, schemes, needed)])),
    sim: simVerb(schemes),
  };
}
