/**
 * The data structures and messages of DOT-M (Yang, Zhang, Tong, "DOT-M: A Dual Offline Transaction
 * Scheme of Central Bank Digital Currency for Trusted Mobile Devices"), with codecs and the domain
 * tags their signatures cover:
 * - the currency block of §3.2.1 (Figure 3): the form of presentation signed by the central bank
 *   (Figure 4), the linked list of offline transaction records (Figure 5), the remaining amount of
 *   value and the number of offline transactions;
 * - the nine steps of §3.3.3 (Figure 7): λ (step 1), the failure notice (steps 2 and 4), σ with its
 *   transaction data tsd (step 3, Figure 8), the payee's signed notification (step 6) and the
 *   payer's success message (step 8).
 * Certificates travel as their encoded bytes, so a signature covers exactly what was sent.
 * See docs/dotm.md for how each field maps to the paper. One file per concept: messages-fields.ts
 * (limits and shared fields), messages-block.ts (Figures 3–5), messages-request.ts (step 1),
 * messages-transaction.ts (step 3), messages-notices.ts (steps 2, 4, 6 and 8); this file is their
 * public face.
 */
export * from './messages-fields.ts';
export * from './messages-block.ts';
export * from './messages-request.ts';
export * from './messages-transaction.ts';
export * from './messages-notices.ts';
