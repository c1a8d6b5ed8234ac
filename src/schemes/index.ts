/**
 * The registry: the one list of schemes that every face reads (`tally node start`, the CLI, the
 * benchmarks). Adding a scheme is its folder and one line here.
 */
import { chain } from './chain/index.ts';
import { dotm } from './dotm/index.ts';
import { opera } from './opera/index.ts';
import { ops } from './ops/index.ts';
import { otp } from './otp/index.ts';
import type { Scheme } from './scheme.ts';

export type { Paper, Scheme } from './scheme.ts';

/** Every scheme this build runs, in the order `tally schemes` lists them. */
export const SCHEMES: readonly Scheme[] = [ops, dotm, otp, chain, opera];
