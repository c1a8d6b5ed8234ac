/** The DOT-M trusted app's build as the factory measures it (kept apart from the wallet so that listing it loads nothing else). */

/** The DOT-M trusted app's build: its measurement covers the import closure of this file. */
export const DOTM_TA_BUILD = { entry: 'schemes/dotm/trusted-app.ts' } as const;
