/**
 * The toy scheme's wallet part: a purse in an isolated secure element, loaded from the online
 * account (the node moves the amount to the toy float) and spent offline as signed receipts. A
 * test-only scheme that shows what a scheme must write to plug into the wallet shell; it is not in
 * the registry and its trusted app believes its host about loads, which no real scheme may do.
 */
import { fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { TallyError } from '../../core/errors.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { toyPurse, type PurseState } from '../../secure-element/apps/toy-purse.ts';
import { createWalletFolder, holdLegacyAccount, holdNewAccount, isNodeRefusal, newAccountKey, newStepId, openFolderOf, startSecureElement, WalletShell, type OpenedWallet, type TrustedAppSpec, type WalletFormat } from '../../wallet/plugin.ts';

type ToyCommands = typeof toyPurse.commands;
const TOY_TA: TrustedAppSpec<PurseState, ToyCommands> = { app: toyPurse, location: { module: new URL('../../secure-element/apps/toy-purse.ts', import.meta.url).href, export: 'toyPurse' } };

/** A load from the online account, until the purse has taken it. */
export interface LoadStep {
  kind: 'load';
  id: string;
  amount: string;
  /** The node moved the amount to the float. */
  moved?: boolean;
}

/** What a toy wallet keeps: its purse's public key (hex). */
export interface ToySlot {
  purse: string;
}

/** How a toy wallet reads its steps and slot. */
const TOY_FORMAT: WalletFormat<LoadStep, ToySlot> = {
  step: (raw) => (raw.kind === 'load' && typeof raw.amount === 'string' && (raw.moved === undefined || typeof raw.moved === 'boolean') ? { kind: 'load', id: raw.id, amount: raw.amount, ...(raw.moved === true ? { moved: true } : {}) } : null),
  slot: (raw) => (raw !== null && typeof raw === 'object' && 'purse' in raw && typeof raw.purse === 'string' ? { purse: raw.purse } : null),
};

/** An open toy wallet. */
export class ToyWallet extends WalletShell<LoadStep, ToySlot, PurseState, ToyCommands> {
  private constructor(opened: OpenedWallet<LoadStep, ToySlot>) {
    super(opened);
  }

  protected secureElementSpec() {
    return { spec: TOY_TA };
  }

  protected async probeSecureElement(): Promise<void> {
    await (await this.startedSe()).call('balance', {});
  }

  protected runStep(step: LoadStep): Promise<unknown> {
    return this.runLoad(step);
  }

  /** Creates a toy wallet: a user at the node and a purse in its own SE process. */
  static async create(options: { home: string; name: string; node: string; progress?: (line: string) => void }): Promise<ToyWallet> {
    await createWalletFolder<ToySlot>({ ...options, scheme: 'toy', needsOem: false }, async ({ name, node, info, paths, progress, registerUser }) => {
      const account = newAccountKey(randomBytes(32));
      const user = account.signer;
      progress('registering the user at the node');
      const registered = await registerUser(user);
      const host = await startSecureElement(TOY_TA, paths, true);
      let purse;
      let held;
      try {
        purse = await host.call('publicKey', {});
        held = await holdNewAccount(account, { slot: host });
        await host.close();
      } catch (e) {
        await host.kill();
        throw e;
      }
      const data = {
        name,
        scheme: 'toy',
        node: node.url,
        currency: info.currency,
        createdAt: Date.now(),
        user: { held, keyId: registered.keyId, account: registered.account, certificate: registered.certificate },
        device: null,
        slot: { purse: toHex(purse.key) },
        certificates: info.certificates,
      };
      return { data, detail: `toy purse ${toHex(purse.key).slice(0, 16)}` };
    });
    return ToyWallet.open(options.home, options.name);
  }

  /** Opens a toy wallet under its lock. */
  static async open(home: string, name: string): Promise<ToyWallet> {
    const opened = await openFolderOf(home, name, 'toy', TOY_FORMAT, { account: holdLegacyAccount(TOY_TA.app) });
    try {
      return new ToyWallet(opened);
    } catch (e) {
      opened.book.close();
      await opened.unlock();
      throw e;
    }
  }

  /** The online balance and the purse's. */
  async balance(): Promise<{ online: string | null; offline: string; spent: string }> {
    const online = await this.onlineBalanceWith(() => this.accountSigner());
    const purse = await (await this.startedSe()).call('balance', {});
    return { online: online.balance, offline: this.format(purse.balance), spent: purse.spent.toString() };
  }

  /** Moves `amountText` from the online account into the purse (a journal step: node, then SE). */
  async deposit(amountText: string): Promise<{ amount: string; offline: string }> {
    const amount = this.parseAmount(amountText);
    const step: LoadStep = { kind: 'load', id: newStepId(), amount: amount.toString() };
    await this.begin(step);
    const balance = await this.runLoad(step);
    return { amount: this.format(amount), offline: this.format(balance) };
  }

  private async runLoad(step: LoadStep): Promise<bigint> {
    if (step.moved !== true) {
      try {
        await this.node.signed(await this.accountSigner(), 'POST', '/v1/toy/loads', { body: { amount: this.format(BigInt(step.amount)) }, idempotencyKey: `toy-load-${step.id}` });
      } catch (e) {
        if (isNodeRefusal(e)) await this.finish(step, { at: Date.now(), kind: 'deposit-refused', amount: this.format(BigInt(step.amount)), detail: e.message });
        throw e;
      }
      step.moved = true;
      await this.update(step);
    }
    const out = await (await this.startedSe()).call('load', { amount: BigInt(step.amount) }, { requestId: fromHex(step.id) });
    await this.finish(step, { at: Date.now(), kind: 'deposit', amount: this.format(BigInt(step.amount)) });
    return out.balance;
  }

  /** Spends `amountText` to a payee (32-byte key, hex) offline: the purse signs a receipt (base64url of its CBOR). */
  async pay(payee: string, amountText: string): Promise<{ amount: string; index: string; receipt: string }> {
    if (!/^[0-9a-f]{64}$/.test(payee)) throw new TallyError('DECODE_FAILED', `payee: expected 64 hex digits, got ${JSON.stringify(payee).slice(0, 80)}`, { path: 'payee', expected: '64 hex digits', got: payee.slice(0, 80) });
    const amount = this.parseAmount(amountText);
    const receipt = await (await this.startedSe()).call('spend', { amount, payee: fromHex(payee) });
    await this.note({ at: Date.now(), kind: 'pay', amount: this.format(amount), detail: `receipt ${receipt.index} to ${payee.slice(0, 16)}` });
    return { amount: this.format(amount), index: receipt.index.toString(), receipt: toBase64url(encodeCbor({ amount: receipt.amount, payee: receipt.payee, index: receipt.index, signature: receipt.signature })) };
  }
}
