/** The DOT-M trusted app's build as the factory measures it (kept apart from the wallet so that listing it loads nothing else). */

/** The DOT-M trusted app's build: its measurement covers these files. */
export const DOTM_TA_BUILD = { entry: new URL('./trusted-app.ts', import.meta.url), sources: ['trusted-app.ts', 'trusted-app-state.ts', 'messages.ts', 'block.ts', 'online.ts'] } as const;
