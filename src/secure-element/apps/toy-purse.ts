/**
 * A toy purse: the smallest trusted app that exercises everything a host must do (signed outputs,
 * rejections, read-only commands). The real trusted apps come with the schemes.
 */
import { AMOUNT_MINOR_MAX } from '../../core/amount.ts';
import { bigint, bytes, record, type Codec } from '../../core/codec.ts';
import { publicKeyCodec, type PublicKey } from '../../core/crypto/suite.ts';
import { signRecord } from '../../core/crypto/record.ts';
import { accept, command, defineTrustedApp, reject } from '../trusted-app.ts';

/** The purse's state. */
export interface PurseState {
  readonly balance: bigint;
  readonly spent: bigint;
}

const amount = bigint({ min: 1n, max: AMOUNT_MINOR_MAX });
const balance = bigint({ min: 0n, max: AMOUNT_MINOR_MAX });

/** Domain tag of a spend receipt. */
export const RECEIPT_TAG = 'tally/toy-purse/receipt/v1';

/** A signed receipt for a spend. */
export interface Receipt {
  readonly amount: bigint;
  readonly payee: Uint8Array;
  readonly index: bigint;
  readonly signature: Uint8Array;
}

const receiptCodec: Codec<Receipt> = record({
  amount,
  payee: bytes({ length: 32 }),
  index: bigint({ min: 1n, max: 2n ** 64n - 1n }),
  signature: bytes({ max: 72 }),
});

/** The toy purse trusted app. */
export const toyPurse = defineTrustedApp({
  name: 'toy-purse',
  state: record({ balance, spent: bigint({ min: 0n, max: 2n ** 64n - 1n }) }),
  init: (): PurseState => ({ balance: 0n, spent: 0n }),
  commands: {
    load: command({
      input: record({ amount }),
      output: record({ balance }),
      run(state: PurseState, input) {
        const next = state.balance + input.amount;
        if (next > AMOUNT_MINOR_MAX) return reject('BALANCE_OVERFLOW', 'the purse cannot hold that much');
        return accept({ ...state, balance: next }, { balance: next });
      },
    }),
    spend: command({
      input: record({ amount, payee: bytes({ length: 32 }) }),
      output: receiptCodec,
      run(state: PurseState, input, env) {
        if (input.amount > state.balance) return reject('INSUFFICIENT_FUNDS', `balance ${state.balance} is below ${input.amount}`);
        const index = state.spent + 1n;
        const body = { amount: input.amount, payee: input.payee, index };
        const signature = signRecord(env.signer('purse'), RECEIPT_TAG, body);
        return accept({ balance: state.balance - input.amount, spent: index }, { ...body, signature });
      },
    }),
    balance: command({
      input: record({}),
      output: record({ balance, spent: bigint({ min: 0n, max: 2n ** 64n - 1n }) }),
      readOnly: true,
      run: (state: PurseState) => accept(state, { balance: state.balance, spent: state.spent }),
    }),
    publicKey: command({
      input: record({}),
      output: publicKeyCodec,
      readOnly: true,
      run: (state: PurseState, _input, env) => accept<PurseState, PublicKey>(state, env.signer('purse').publicKey),
    }),
  },
});
