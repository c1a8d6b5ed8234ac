/** The chain-tee trusted app's build as the factory measures it (kept apart from the wallet so that listing it loads nothing else). */

/** The chain-tee trusted app's build: its measurement covers the import closure of this file. */
export const CHAIN_TA_BUILD = { entry: 'schemes/chain/trusted-app.ts' } as const;
