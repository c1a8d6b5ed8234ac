/**
 * The floors of `bench opera`, measured in the same run:
 * - what the harness's metering provider sees: the signatures and verifications of payments of two
 *   sizes between two in-process ODWs whose keys work through it, counted per stage and replayed;
 *   the difference between the two sizes is what one token costs (the payee's check of the bank's
 *   signature on it, at Msg 3-1), the rest what every payment costs (the release and acceptance
 *   signatures of Stage 3);
 * - what it cannot see, timed here on the primitives the ODW calls, at the sizes of a real token
 *   and of the real messages: one anonymous proof of the credential and its verification (Stage 1,
 *   BBS over BLS12-381), and a token's AEAD and hash work in Stage 2 (its `{Token}PTK_A` sealed and,
 *   at 3-1, opened; Msgs 2-3 and 2-4 each sealed and opened under their OTKs; four OTK steps; the
 *   HPKE seal of the payer's escrow tag, escrow.ts);
 * - the persistence floor: a token costs two ODW commands (the payer's step and the payee's), each
 *   a commit of the sealed state, timed as the host makes it.
 * CBOR, the Noise link's own AEAD and the state's sealing are left out: the floors are lower bounds.
 */
import { encodeCbor } from '../../core/cbor.ts';
import { randomBytes } from '../../core/crypto/hash.ts';
import { generateKeyPair, HPKE_TAG_BYTES, setupBaseS } from '../../core/crypto/hpke.ts';
import { signerFromSecret, type CryptoProvider } from '../../core/crypto/suite.ts';
import { credentialKeys, issueCredential, proveCredential, verifyCredentialProof } from '../../pki/anonymous-credential.ts';
import { latency, throughput, type CryptoCounts, type CryptoMeter, type Metered, type TcpServer } from '../../sim/bench/plugin.ts';
import { chainMessageCodec, type ChainMessage } from './exchange.ts';
import { NONCE_BYTES, ODW_CREDENTIAL_LABEL, TXID_BYTES } from './messages.ts';
import { OPERA_NODE_DEFAULTS } from './node-common.ts';
import { nextOtk, openMessage, openToken, PTK_BYTES, sealMessage, sealToken, type OtkHash } from './otk.ts';
import { operaEscrow, type SealedTag } from './escrow.ts';
import { signToken, TOKEN_SERIAL_BYTES } from './token.ts';
import { STAGES, type Stage } from './bench-payment.ts';
import { TOKEN_MINOR, type OperaWorld, type Party } from './bench-setup.ts';
import { payTokens, type Pair } from './bench-ramp.ts';

/** The floors, ms, with what makes them up. */
export interface OperaFloor {
  /** The two metered payments' sizes, tokens. */
  readonly meteredCounts: readonly [number, number];
  /** Signatures and verifications per token and per payment whatever its size, by stage. */
  readonly perToken: Readonly<Record<Stage, CryptoCounts>>;
  readonly perPayment: Readonly<Record<Stage, CryptoCounts>>;
  /** The metered operations of one token replayed, ms. */
  readonly meteredPerTokenMs: number;
  /** One anonymous proof and one verification of it (p50), ms; its size, bytes. */
  readonly proveMs: number;
  readonly verifyMs: number;
  readonly proofBytes: number;
  /** A token's AEAD and hash work, ms each: sealToken, openToken, sealMessage and openMessage of 2-3 and of 2-4, one OTK step, the HPKE seal of its escrow tag. */
  readonly aead: { readonly sealToken: number; readonly openToken: number; readonly seal23: number; readonly open23: number; readonly seal24: number; readonly open24: number; readonly nextOtk: number; readonly sealTag: number };
  /** The hash of the OTK chain, as the bench node's parameters name it. */
  readonly otkHash: OtkHash;
  /** The sizes: a token's CBOR, and the plaintexts of 2-3 and 2-4, bytes. */
  readonly tokenBytes: number;
  readonly msg23Bytes: number;
  readonly msg24Bytes: number;
  /** The AEAD and hash work of one token: the seven above, four OTK steps and the tag's seal, ms. */
  readonly aeadPerTokenMs: number;
  /** The crypto floor of one token: metered + AEAD and hash, ms. */
  readonly perTokenMs: number;
  /** The crypto floor of Stage 1 on its critical path (the two ODWs work side by side): one proof and one verification, ms. */
  readonly stage1Ms: number;
  /** The two commits of a token (the payer's and the payee's sealed states, of these sizes), p50, ms. */
  readonly commitSealedBytes: readonly number[];
  readonly commitsPerTokenMs: number;
}

const msPer = (operation: () => void, budgetMs: number) => 1000 / throughput(operation, budgetMs);
const zero = (): Record<Stage, CryptoCounts> => ({ stage1: { signs: 0, verifies: 0 }, stage2: { signs: 0, verifies: 0 }, stage3: { signs: 0, verifies: 0 } });

/**
 * One payment of `count` tokens between the in-process pair with the meter armed, disarmed and
 * armed again at each stage's first command (the payer's begin, its step on the last 2-4).
 */
async function meteredPayment(world: OperaWorld, server: TcpServer, pair: Pair, meter: CryptoMeter, count: number): Promise<Record<Stage, Metered>> {
  const parts: Partial<Record<Stage, Metered>> = {};
  let current: Stage = 'stage1';
  const enter = (stage: Stage) => {
    parts[current] = meter.disarm();
    meter.arm();
    current = stage;
  };
  await payTokens(world, server, pair, count, {
    onCall(call, index) {
      if (call.side === 'payer' && index === 3) enter('stage2');
      if (call.side === 'payer' && index === 4 + count) enter('stage3');
    },
    async around(pay) {
      meter.arm();
      try {
        return await pay();
      } finally {
        parts[current] = meter.disarm();
      }
    },
  });
  const { stage1, stage2, stage3 } = parts;
  if (stage1 === undefined || stage2 === undefined || stage3 === undefined) throw new Error('a metered payment did not pass through its three stages');
  return { stage1, stage2, stage3 };
}

/** Times one anonymous proof of a fresh credential and its verification, `iterations` times each. */
async function proofCosts(iterations: number): Promise<{ proveMs: number; verifyMs: number; proofBytes: number }> {
  const keys = await credentialKeys(randomBytes(32));
  const claims = { label: ODW_CREDENTIAL_LABEL, reference: randomBytes(32) };
  const holder = randomBytes(32);
  const credential = await issueCredential(keys, claims, holder);
  const bind = randomBytes(32);
  const proof = await proveCredential({ publicKey: keys.publicKey, credential, claims, holder, bind });
  const prove = await latency(() => proveCredential({ publicKey: keys.publicKey, credential, claims, holder, bind }), iterations, 2);
  const verify = await latency(async () => {
    if (!(await verifyCredentialProof({ publicKey: keys.publicKey, proof, claims, bind }))) throw new Error('the floor proof failed to verify');
  }, iterations, 2);
  return { proveMs: prove.p50Ms, verifyMs: verify.p50Ms, proofBytes: proof.length };
}

/** Times a token's AEAD and hash work at the sizes of a real token and real messages. */
function aeadCosts(provider: CryptoProvider, budgetMs: number) {
  const suite = provider.suites.ed25519;
  const bank = signerFromSecret(suite, suite.generateSecretKey());
  // A token as a payee gets it: with the payer's escrow tag, sealed to the bank's escrow key.
  const escrow = generateKeyPair();
  const bare = signToken(bank, { serial: randomBytes(TOKEN_SERIAL_BYTES), value: TOKEN_MINOR, currency: 'EUR', issued: Date.now() });
  const tags = operaEscrow.appendTag({ serial: bare.body.serial, tags: [], payee: randomBytes(16), device: bank, escrowPublicKey: escrow.publicKey });
  const token = encodeCbor({ ...bare, tags });
  const tagContent = new Uint8Array((tags[0] as SealedTag).ciphertext.length - HPKE_TAG_BYTES);
  const tagInfo = encodeCbor([operaEscrow.domain.infoLabel, bare.body.serial, 1]);
  const ptk = randomBytes(PTK_BYTES);
  const txid = randomBytes(TXID_BYTES);
  const nonce = randomBytes(NONCE_BYTES);
  const counter = 500;
  const box = sealToken(ptk, txid, counter, token);
  const plain = (m: ChainMessage) => encodeCbor(chainMessageCodec.decode(m, 'message'));
  const msg23 = plain({ msg: '2-3', token: box, counter, nonce });
  const msg24 = plain({ msg: '2-4', counter, nonce: nonce.map((b) => b ^ 0xff) });
  const otk = randomBytes(32);
  const [box23, box24] = [sealMessage(otk, 2 * counter, 'payer', msg23), sealMessage(otk, 2 * counter, 'payee', msg24)];
  const hash = OPERA_NODE_DEFAULTS.hash;
  const aead = {
    sealToken: msPer(() => sealToken(ptk, txid, counter, token), budgetMs),
    openToken: msPer(() => openToken(ptk, txid, counter, box), budgetMs),
    seal23: msPer(() => sealMessage(otk, 2 * counter, 'payer', msg23), budgetMs),
    open23: msPer(() => openMessage(otk, 2 * counter, 'payer', box23), budgetMs),
    seal24: msPer(() => sealMessage(otk, 2 * counter, 'payee', msg24), budgetMs),
    open24: msPer(() => openMessage(otk, 2 * counter, 'payee', box24), budgetMs),
    nextOtk: msPer(() => nextOtk(hash, otk, msg23), budgetMs),
    // The payer's escrow tag: HPKE to the bank's key (two X25519 operations), its signature metered above.
    sealTag: msPer(() => setupBaseS({ recipientPublicKey: escrow.publicKey, info: tagInfo }).seal(tagContent), budgetMs),
  };
  const { nextOtk: step, ...once } = aead;
  return { aead, otkHash: hash, tokenBytes: token.length, msg23Bytes: msg23.length, msg24Bytes: msg24.length, aeadPerTokenMs: Object.values(once).reduce((s, x) => s + x, 0) + 4 * step };
}

/** Measures the floors: metered payments of `counts` tokens between `inProcess`, the primitives for `budgetMs` each, the commits of `isolated`'s two ODWs. */
export async function measureFloor(options: {
  world: OperaWorld;
  server: TcpServer;
  inProcess: Pair;
  isolated: { readonly payer: Party; readonly payee: Party };
  meter: CryptoMeter;
  counts: readonly [number, number];
  budgetMs: number;
  proofIterations: number;
  commitIterations: number;
}): Promise<OperaFloor> {
  const { world, server, inProcess, meter, counts, budgetMs } = options;
  const harness = world.harness;
  const [n1, n2] = counts;
  if (!(n2 > n1)) throw new RangeError(`the metered payments: expected two sizes, the second larger, got ${n1} and ${n2}`);
  const small = await meteredPayment(world, server, inProcess, meter, n1);
  const large = await meteredPayment(world, server, inProcess, meter, n2);
  const perToken = zero();
  const perPayment = zero();
  let meteredPerTokenMs = 0;
  const iterations = Math.max(5, Math.round(budgetMs / 5));
  for (const s of STAGES) {
    const [a, b] = [small[s].counts, large[s].counts];
    perToken[s] = { signs: (b.signs - a.signs) / (n2 - n1), verifies: (b.verifies - a.verifies) / (n2 - n1) };
    perPayment[s] = { signs: a.signs - n1 * perToken[s].signs, verifies: a.verifies - n1 * perToken[s].verifies };
    meteredPerTokenMs += (large[s].replay.medianMs(iterations) - small[s].replay.medianMs(iterations)) / (n2 - n1);
  }
  const proof = await proofCosts(options.proofIterations);
  const aead = aeadCosts(harness.provider, budgetMs);
  const commitSealedBytes = [await harness.fileBytes(options.isolated.payer.sealedPath), await harness.fileBytes(options.isolated.payee.sealedPath)];
  const commits = await harness.measureCommits(commitSealedBytes, options.commitIterations);
  return {
    meteredCounts: counts,
    perToken,
    perPayment,
    meteredPerTokenMs,
    ...proof,
    ...aead,
    perTokenMs: meteredPerTokenMs + aead.aeadPerTokenMs,
    stage1Ms: proof.proveMs + proof.verifyMs,
    commitSealedBytes,
    commitsPerTokenMs: commits.p50Ms,
  };
}
