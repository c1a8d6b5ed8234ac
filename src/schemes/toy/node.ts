/**
 * The toy scheme's node part: its float account and one route, `POST /v1/toy/loads`, that moves an
 * amount from the caller's online account to the toy float (idempotent by the request's key).
 */
import { z } from 'zod';
import { amountText, ensureAccount, formatMinor, idempotent, parseAmount, refusal, requireUser, transfer, validBody, type SchemeModule } from '../../issuer/plugin.ts';

/** Where loaded value is held while it is in purses. */
export const TOY_FLOAT_ACCOUNT = 'float:toy';

const loadBody = z.strictObject({ amount: amountText });

/** The toy scheme's node part. */
export const toyNodePart: SchemeModule = {
  name: 'toy',
  async prepare(services) {
    const opened = await services.db.transaction((tx) => ensureAccount(tx, { id: TOY_FLOAT_ACCOUNT, kind: 'offline-float', currency: services.currency.code }));
    if (!opened.ok) throw new Error(`cannot open ${TOY_FLOAT_ACCOUNT}: ${opened.message}`);
  },
  register(app, services) {
    app.post('/loads', async (c) => {
      const user = requireUser(c.get('caller'));
      const body = validBody(c, loadBody);
      const amount = parseAmount(services, body.amount).minor;
      return idempotent(services, c, 'toy/loads', user.keyId, async (tx) => {
        const moved = await transfer(tx, { idempotencyKey: `toy-load:${crypto.randomUUID()}`, debit: user.accountId, credit: TOY_FLOAT_ACCOUNT, amount, kind: 'toy-load', reference: {}, currency: services.currency });
        if (!moved.ok) return refusal(moved.code, moved.message);
        return { status: 200, body: { amount: formatMinor(services.currency, amount) } };
      });
    });
  },
};
