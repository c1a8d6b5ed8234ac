/** The SM2 suite over sm-crypto-v2, loaded with this file (see sm2-suite.ts for the suite itself). */
import { sm2 } from 'sm-crypto-v2';
import type { SignatureSuite } from './suite.ts';
import { sm2SuiteOver } from './sm2-suite.ts';

export { SM2_DEFAULT_USER_ID, SM2_ORDER } from './sm2-suite.ts';

/** SM2 with SM3, through sm-crypto-v2. */
export const sm2Suite: SignatureSuite = sm2SuiteOver(sm2);
