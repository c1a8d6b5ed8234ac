/** The DOT-M trusted app's build as the factory measures it (kept apart from the wallet so that listing it loads nothing else). */

/** The DOT-M trusted app's build: its measurement covers these files. */
export const DOTM_TA_BUILD = { entry: new URL('./trusted-app.ts', import.meta.url), sources: ['trusted-app.ts', 'trusted-app-state.ts', 'trusted-app-common.ts', 'trusted-app-registration.ts', 'trusted-app-password.ts', 'trusted-app-online.ts', 'trusted-app-payee.ts', 'trusted-app-payer.ts', 'messages.ts', 'messages-fields.ts', 'messages-block.ts', 'messages-request.ts', 'messages-transaction.ts', 'messages-notices.ts', 'block.ts', 'online.ts'] } as const;
