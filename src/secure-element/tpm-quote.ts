/**
 * Platform quotes from a TPM 2.0 through tpm2-tools (OPERA §3.3.1, Stage 1): the trusted wallet's
 * build is extended into a PCR, and the TPM's attestation key (AK) signs that PCR's value over a
 * verifier's nonce. The TCTI picks the TPM: swtpm in tests, `device:/dev/tpmrm0` on hardware.
 * What the quote proves and what it does not: docs/tpm-quote.md. Checking one: pki/tpm-quote.ts.
 *
 * swtpm is reached without a resource manager, so an object a tool loads stays loaded after the tool
 * exits and the TPM's three transient slots fill up (TPM_RC_OBJECT_MEMORY, 0x902): every run that
 * loads an object is followed by `tpm2_flushcontext -t`, and the runs on one TCTI are serialised so
 * that a flush never drops another call's object.
 */
import { createPublicKey } from 'node:crypto';
import { access, link, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { concatBytes, equalBytes, toHex } from '../core/bytes.ts';
import { TallyError } from '../core/errors.ts';
import { parseAttest, parseSignature, pcrDigest, PCR_VALUE_BYTES, TPM_PCR_COUNT } from '../pki/tpm-quote.ts';
import { isFsError, syncDirectory, writeDurably } from './durable-file.ts';
import { KeyedQueue } from './keyed-queue.ts';
import { Tpm2Tools, type Tpm2RunOptions, type Tpm2ToolResult } from './tpm2-tools.ts';

/**
 * The PCR the trusted wallet's build is extended into: 23, which the TCG PC Client profile leaves to
 * applications. Firmware and boot loaders extend 0..15 and PCR 16 is the debug PCR, so 23 disturbs
 * nothing on a real host, and it starts at zero at every TPM reset, so its value after one
 * extension is known in advance (see docs/tpm-quote.md for what a resettable PCR does not prove).
 */
export const ODW_PCR = 23;
/** The default bound on each tpm2-tools run (a hardware TPM can take seconds to make a key). */
export const TPM_QUOTE_TIMEOUT_MS_DEFAULT = 10_000;
/** Largest qualifying data (nonce) a quote carries: a SHA-512 digest. */
export const QUALIFYING_DATA_BYTES_MAX = 64;
/**
 * The AK in a key directory: its TPM2B_PUBLIC then its TPM2B_PRIVATE (the private part wrapped by the
 * EK, so only this TPM can load it). Not a saved context: those do not survive a TPM reset.
 */
export const AK_KEY_FILE = 'ak.key';

/** Options common to the calls here. */
export interface TpmCallOptions {
  /** Bound on each tpm2-tools run; TPM_QUOTE_TIMEOUT_MS_DEFAULT when absent. */
  timeoutMs?: number | undefined;
}

/** What quote() asks for. */
export interface QuoteRequest extends TpmCallOptions {
  /** PCRs of the SHA-256 bank to quote, each 0..23 once. */
  pcrs: readonly number[];
  /** The verifier's nonce, at most QUALIFYING_DATA_BYTES_MAX bytes; the quote carries it as extraData. */
  qualifyingData: Uint8Array;
}

/** A TPM's quote. */
export interface TpmQuote {
  /** The TPMS_ATTEST as the TPM marshalled it: what the AK signed. */
  attest: Uint8Array;
  /** The AK's ECDSA P-256 signature over SHA-256(attest), raw r ‖ s (64 bytes). */
  signature: Uint8Array;
  /** The quoted PCRs' SHA-256 values, by PCR number, as the TPM read them for this quote. */
  pcrValues: Map<number, Uint8Array>;
}

function tools(tcti: string, options: TpmCallOptions): Tpm2Tools {
  const timeoutMs = options.timeoutMs ?? TPM_QUOTE_TIMEOUT_MS_DEFAULT;
  return new Tpm2Tools({
    tcti,
    timeoutMs,
    fail: ({ fault, tool, message }, cause): TallyError => {
      if (fault === 'missing') return new TallyError('TPM_TOOL_MISSING', message, { tool }, { cause });
      if (fault === 'timeout') return new TallyError('TPM_TIMEOUT', message, { tool, timeoutMs }, { cause });
      return new TallyError('TPM_COMMAND_FAILED', message, { tool, reason: message }, { cause });
    },
  });
}

function failed(tool: string, reason: string): TallyError<'TPM_COMMAND_FAILED'> {
  return new TallyError('TPM_COMMAND_FAILED', reason, { tool, reason });
}

// Without a resource manager, one call's flush would drop another's objects: one call at a time per TPM.
const queue = new KeyedQueue();

/** Runs a tool that loads objects, then flushes every transient object, also when the tool failed. */
async function runAndFlush(t: Tpm2Tools, tool: string, args: string[], options: Tpm2RunOptions): Promise<Tpm2ToolResult> {
  let result: Tpm2ToolResult;
  try {
    result = await t.run(tool, args, options);
  } catch (e) {
    await t.run('tpm2_flushcontext', ['-t'], { check: false }).catch(() => undefined);
    throw e;
  }
  await t.run('tpm2_flushcontext', ['-t'], { subject: 'of transient objects' });
  return result;
}

/** A private scratch directory in dir for the tools' files, removed whatever happens. */
async function withScratch<T>(dir: string, task: (scratch: string) => Promise<T>): Promise<T> {
  const scratch = await mkdtemp(join(dir, '.tpm-'));
  try {
    return await task(scratch);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function checkPcr(pcr: number): void {
  if (!Number.isInteger(pcr) || pcr < 0 || pcr >= TPM_PCR_COUNT) throw new RangeError(`pcr: expected an integer in 0..${TPM_PCR_COUNT - 1}, got ${pcr}`);
}

/**
 * Extends a SHA-256 PCR with a 32-byte measurement: the TPM sets it to SHA-256(old value ‖ digest).
 * @throws TallyError TPM_TOOL_MISSING, TPM_TIMEOUT, TPM_COMMAND_FAILED
 * @throws RangeError for a PCR outside 0..23 or a digest of another length; TypeError when it is not bytes
 */
export async function extendMeasurement(tcti: string, pcr: number, digest32: Uint8Array, options: TpmCallOptions = {}): Promise<void> {
  checkPcr(pcr);
  if (!(digest32 instanceof Uint8Array)) throw new TypeError('digest32: expected a Uint8Array');
  if (digest32.length !== PCR_VALUE_BYTES) throw new RangeError(`digest32: expected ${PCR_VALUE_BYTES} bytes, got ${digest32.length}`);
  const t = tools(tcti, options);
  return queue.run(tcti, async () => {
    await t.run('tpm2_pcrextend', [`${pcr}:sha256=${toHex(digest32)}`], { subject: `PCR ${pcr}` });
  });
}

const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

/** The SPKI DER of a P-256 public key in PEM, as tpm2-tools writes it. */
function spkiFromPem(tool: string, pem: Buffer): Uint8Array {
  const key = createPublicKey(pem); // written by tpm2-tools a moment ago; a throw here is a bug
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw failed(tool, `${tool}: the AK is ${key.asymmetricKeyType ?? 'an unknown type'} ${key.asymmetricKeyDetails?.namedCurve ?? ''}, expected an ECC P-256 key`);
  }
  return new Uint8Array(key.export({ format: 'der', type: 'spki' }));
}

/** The TCG default ECC EK (template L-2), made afresh: a TPM derives it from its endorsement seed, so it is the same key each time. */
async function createEk(t: Tpm2Tools, scratch: string): Promise<string> {
  const ek = join(scratch, 'ek.ctx');
  await runAndFlush(t, 'tpm2_createek', ['-c', ek, '-G', 'ecc', '-u', join(scratch, 'ek.pub')], { subject: 'EK' });
  return ek;
}

/** The two TPM2Bs of a key file: TPM2B_PUBLIC, then TPM2B_PRIVATE, each a 2-byte size and its bytes. */
function splitKey(file: string, blob: Uint8Array): [Uint8Array, Uint8Array] {
  const end = (at: number) => at + 2 + (((blob[at] ?? 0) << 8) | (blob[at + 1] ?? 0));
  const pubEnd = end(0);
  if (blob.length < 4 || end(pubEnd) !== blob.length) {
    throw failed('tpm2_load', `${file} is not an AK key file (TPM2B_PUBLIC then TPM2B_PRIVATE): delete its directory and create the AK again`);
  }
  return [blob.slice(0, pubEnd), blob.slice(pubEnd)];
}

/**
 * Loads the AK kept in dir under the EK (TPM2_Load needs the EK's policy: PolicySecret of the
 * endorsement hierarchy) and answers the path of its context, valid until the TPM next resets.
 */
async function loadAk(t: Tpm2Tools, keyFile: string, scratch: string): Promise<string> {
  const [pub, priv] = splitKey(keyFile, new Uint8Array(await readFile(keyFile)));
  const [pubFile, privFile, session, context] = ['ak.pub', 'ak.priv', 'session.ctx', 'ak.ctx'].map((name) => join(scratch, name)) as [string, string, string, string];
  await writeFile(pubFile, pub);
  await writeFile(privFile, priv);
  const ek = await createEk(t, scratch);
  await t.run('tpm2_startauthsession', ['--policy-session', '-S', session]);
  try {
    await t.run('tpm2_policysecret', ['-S', session, '-c', 'e']);
    await runAndFlush(t, 'tpm2_load', ['-C', ek, '-u', pubFile, '-r', privFile, '-c', context, '-P', `session:${session}`], { subject: `of the AK ${keyFile}` });
  } finally {
    // A session the TPM already closed after its use makes this fail, harmlessly.
    await t.run('tpm2_flushcontext', [session], { check: false }).catch(() => undefined);
  }
  return context;
}

/** The SPKI DER of a loaded AK, read back from the TPM. */
async function readAkPublic(t: Tpm2Tools, context: string, scratch: string): Promise<Uint8Array> {
  const pem = join(scratch, 'ak.pem');
  await runAndFlush(t, 'tpm2_readpublic', ['-c', context, '-f', 'pem', '-o', pem], { subject: 'of the AK' });
  return spkiFromPem('tpm2_readpublic', await readFile(pem));
}

/**
 * Creates the TPM's endorsement key (EK: ECC P-256, the TCG default template) and under it a
 * restricted attestation key (AK: ECC P-256, ECDSA with SHA-256), and keeps the AK in `dir` as the
 * TPM wraps it (AK_KEY_FILE; only this TPM can load it). Idempotent per dir: an AK already there is
 * loaded and reused.
 * @returns the AK's public key as SPKI DER
 * @throws TallyError TPM_TOOL_MISSING, TPM_TIMEOUT, TPM_COMMAND_FAILED (also for a dir whose AK belongs to another TPM)
 */
export async function createAttestationKey(tcti: string, dir: string, options: TpmCallOptions = {}): Promise<Uint8Array> {
  const t = tools(tcti, options);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, AK_KEY_FILE);
  return queue.run(tcti, () =>
    withScratch(dir, async (scratch) => {
      if (await exists(keyFile)) return readAkPublic(t, await loadAk(t, keyFile, scratch), scratch);
      const [pub, priv, context] = ['ak.pub', 'ak.priv', 'ak.ctx'].map((name) => join(scratch, name)) as [string, string, string];
      const ek = await createEk(t, scratch);
      await runAndFlush(t, 'tpm2_createak', ['-C', ek, '-c', context, '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', pub, '-r', priv], { subject: 'AK' });
      const spki = await readAkPublic(t, context, scratch);
      // Whole and on disk before it takes its name; link, not rename, never replaces an AK another
      // caller put there meanwhile.
      const synced = join(scratch, AK_KEY_FILE);
      await writeDurably(synced, concatBytes(await readFile(pub), await readFile(priv)), 'wx');
      try {
        await link(synced, keyFile);
      } catch (e) {
        if (!isFsError(e, 'EEXIST')) throw e;
        return readAkPublic(t, await loadAk(t, keyFile, scratch), scratch);
      }
      await syncDirectory(dir);
      return spki;
    }),
  );
}

/**
 * Quotes the SHA-256 PCRs `pcrs` with the AK kept in `dir`, over `qualifyingData`.
 * @throws TallyError TPM_TOOL_MISSING, TPM_TIMEOUT, TPM_COMMAND_FAILED (no AK in dir, a tool failed, or the
 *   PCR values read do not match the quoted digest), TPM_QUOTE_INVALID when the TPM's answer does not decode
 * @throws RangeError for bad pcrs or qualifying data
 */
export async function quote(tcti: string, dir: string, request: QuoteRequest): Promise<TpmQuote> {
  for (const pcr of request.pcrs) checkPcr(pcr);
  const pcrs = [...request.pcrs].sort((a, b) => a - b);
  if (pcrs.length === 0 || new Set(pcrs).size !== pcrs.length) throw new RangeError(`pcrs: expected at least one PCR, each once, got [${request.pcrs.join(',')}]`);
  if (!(request.qualifyingData instanceof Uint8Array) || request.qualifyingData.length > QUALIFYING_DATA_BYTES_MAX) {
    throw new RangeError(`qualifyingData: expected at most ${QUALIFYING_DATA_BYTES_MAX} bytes`);
  }
  const t = tools(tcti, request);
  const keyFile = join(dir, AK_KEY_FILE);
  if (!(await exists(keyFile))) throw failed('tpm2_quote', `no attestation key in ${dir}: call createAttestationKey first`);
  return queue.run(tcti, () =>
    withScratch(dir, async (scratch) => {
      const context = await loadAk(t, keyFile, scratch);
      const [nonce, message, signature, values] = ['nonce.bin', 'attest.bin', 'signature.bin', 'pcrs.bin'].map((name) => join(scratch, name)) as [string, string, string, string];
      // The nonce goes in a file: tpm2_quote -q reads a string as hex first, a path otherwise.
      await writeFile(nonce, request.qualifyingData);
      const args = ['-c', context, '-l', `sha256:${pcrs.join(',')}`, '-q', nonce, '-g', 'sha256', '-m', message, '-s', signature, '-o', values, '-F', 'values'];
      await runAndFlush(t, 'tpm2_quote', args, { subject: `of PCR ${pcrs.join(',')}` });
      const attest = new Uint8Array(await readFile(message));
      const info = parseAttest(attest);
      const read = new Uint8Array(await readFile(values));
      if (read.length !== pcrs.length * PCR_VALUE_BYTES) throw failed('tpm2_quote', `tpm2_quote wrote ${read.length} bytes of PCR values for ${pcrs.length} PCRs`);
      const pcrValues = new Map(pcrs.map((pcr, i) => [pcr, read.slice(i * PCR_VALUE_BYTES, (i + 1) * PCR_VALUE_BYTES)]));
      if (!equalBytes(pcrDigest([...pcrValues.values()]), info.pcrDigest)) {
        throw failed('tpm2_quote', `the PCR values tpm2_quote read do not hash to the quoted digest: PCR ${pcrs.join(',')} changed while quoting; quote again`);
      }
      return { attest, signature: parseSignature(new Uint8Array(await readFile(signature))), pcrValues };
    }),
  );
}
