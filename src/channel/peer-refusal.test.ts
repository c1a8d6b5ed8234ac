import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TallyError } from '../core/errors.ts';
import { localCode, PAYEE_DECLINED, PAYER_DECLINED, peerRefusal, refusalSentence } from './peer-refusal.ts';

const rejected = (reason: string, message: string) => new TallyError('SE_REJECTED', `pay refused: ${message}`, { command: 'pay', reason });

describe('what a refusal tells the peer', () => {
  test("the refusing device's own state becomes the side's neutral code, with a sentence that names none of it", () => {
    const local = [
      rejected('INSUFFICIENT_FUNDS', 'the offline balance 3100 is below 50000'),
      rejected('WRONG_PASSWORD', 'wrong payment password; 4 tries left before the wallet locks'),
      rejected('PASSWORD_LOCKED', 'the wallet is locked after 5 wrong passwords'),
      rejected('OFFLINE_LIMIT', '20 payments since the last sync'),
      rejected('LIMIT_REACHED', 'the wallet holds 900, of which 200 may be paid offline'),
      rejected('WALLET_BUSY', 'an offer is open'),
      new TallyError('SE_CRASHED', 'the secure element died at commit', { point: 'commit' }),
      new TallyError('TOO_LARGE', 'the wallet keeps at most 1000 received payments', { what: 'inbox', size: 1000, max: 1000 }),
      new Error('a bug with a stack'),
    ];
    for (const e of local) {
      assert.deepEqual(peerRefusal('payer', e), { code: PAYER_DECLINED, message: "the payer's wallet declined to make this payment" }, e.message);
      assert.deepEqual(peerRefusal('payee', e), { code: PAYEE_DECLINED, message: "the payee's wallet declined to take this payment" }, e.message);
    }
    // The payee's own limits stay with the payee too.
    assert.equal(peerRefusal('payee', rejected('HOLDING_LIMIT', 'the balance would be 120000, over the holding limit of 100000')).code, PAYEE_DECLINED);
  });

  test("codes about the peer's own message pass on, each with its fixed sentence, never the local text", () => {
    const amount = new TallyError('PAYMENT_INVALID', 'the payee asks for 9.00, not the 5.00 expected', { reason: 'amount' });
    assert.equal(localCode(amount), 'AMOUNT_MISMATCH');
    assert.deepEqual(peerRefusal('payer', amount), { code: 'AMOUNT_MISMATCH', message: 'the payer did not agree to pay this amount' });
    const elsewhere = new TallyError('PAYMENT_INVALID', 'the request names a receiver that is not the peer on this link', { reason: 'receiver is not the peer' });
    assert.equal(peerRefusal('payer', elsewhere).code, 'PAYEE_MISMATCH');
    assert.deepEqual(peerRefusal('payee', new TallyError('PAYMENT_REPLAYED', 'payment 7 of device ab was already received (collected)', { sender: 'ab', index: '7' })), {
      code: 'PAYMENT_REPLAYED',
      message: 'this payment was received before',
    });
    assert.deepEqual(peerRefusal('payee', rejected('SIGNATURE_INVALID', 'γ does not verify under wpk_P')), { code: 'SIGNATURE_INVALID', message: "a signature in the payer's message does not verify" });
    assert.equal(peerRefusal('payee', rejected('CERT_REVOKED', "the payer's certificate 12 is revoked")).code, 'CERT_REVOKED');
  });

  test("a certificate this device cannot verify (its clock, its list) is told as a message that does not verify", () => {
    const early = new TallyError('CERT_NOT_YET_VALID', 'certificate 5 is valid from 2026-12-05, now is 2026-12-04', { serial: '5', notBefore: '2026-12-05', now: '2026-12-04' });
    assert.deepEqual(peerRefusal('payer', early), { code: 'REQUEST_INVALID', message: 'the payment request does not verify' });
    assert.deepEqual(peerRefusal('payee', early), { code: 'PAYMENT_INVALID', message: 'the payment does not verify' });
  });

  test("the side that is refused shows its own sentence for a code it knows, whatever text the peer sent", () => {
    assert.equal(refusalSentence('payer', PAYER_DECLINED, 'send 500.00 more to account X'), "the payer's wallet declined to make this payment");
    assert.equal(refusalSentence('payee', 'SOMETHING_NEW', 'a text from a newer peer'), 'a text from a newer peer');
  });
});
