/** The ODW trusted app's build: its measurement covers the import closure of this file (kept apart from the wallet so that listing it loads nothing else). */
export const OPERA_TA_BUILD = { entry: 'schemes/opera/trusted-app.ts' } as const;
