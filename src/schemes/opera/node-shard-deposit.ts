/**
 * A deposit on a node with shard databases (node-shards.ts): its tokens are spent on their shards,
 * one part per shard, each in a transaction of that shard that moves the part's tokens from issued
 * to deposited (the unique serial is where a double deposit meets itself, as in node-deposit.ts),
 * keeps the part's answer under the part's id, and sends what it credits from the shard's float to
 * the depositor's account at home as one crossing. The home then records the findings (a double
 * spend named, its escrow tags opened to name the device that paid twice), presents other banks'
 * tokens, and stores the signed receipt, which names every token: it is given only once every part
 * is settled. A request sent again (after a shard was down, a crash between parts, or a lost
 * answer) settles the parts left and reads the others' answers, so every token is spent once and
 * the receipt is the same.
 */
import { compareBytes, fromHex, toBase64url, toHex } from '../../core/bytes.ts';
import { encodeCbor } from '../../core/cbor.ts';
import { ApiProblem, formatMinor, isUnavailable, sendAcross, type IssuerServices, type JsonValue, type Party } from '../../issuer/plugin.ts';
import { DEPOSIT_RECEIPT_TAG, depositReceiptBodyCodec, signed, type DepositOutcome, type DepositRequestBody } from './messages.ts';
import { answerResponse, checkRequest, claimNonce, storeAnswer, type SignedRequest } from './node-answers.ts';
import { OPERA_FLOAT_ACCOUNT } from './node-common.ts';
import { attributeDoubleSpend, encodeTags } from './node-escrow.ts';
import { recordFinding } from './node-findings.ts';
import { presentForeignToken, type TokenIssuer } from './node-interbank.ts';
import { byPlace, DEPOSIT_CROSSING_KIND, partId } from './node-shards.ts';
import { tagsOf, type Token } from './token.ts';

/** What one shard answered for its tokens of a deposit, by their place in the request. */
interface PartAnswer {
  readonly credited: string;
  readonly tokens: ReadonlyArray<{ readonly i: number; readonly outcome: 'credited' | 'double-spend' | 'refused'; readonly first?: string | null; readonly firstTags?: string | null }>;
}

interface SpentRow {
  state: string;
  spent_by: string | null;
  tags: Uint8Array | null;
}

/**
 * Settles one shard's part of a deposit, once: answers the stored part when it was settled before.
 * @throws ApiProblem with the ledger's code when the credit cannot be sent (nothing is spent)
 */
async function settlePart(
  services: IssuerServices,
  place: Party,
  deposit: { device: string; account: string; nonce: Uint8Array; digest: Uint8Array; tokens: readonly Token[]; indices: readonly number[] },
): Promise<{ answer: PartAnswer; sent?: { id: string; to: Party } | undefined }> {
  const shards = services.shardLedgers;
  if (shards === undefined) throw new Error('a deposit on shards needs the node’s shard databases');
  const id = partId('deposit', deposit.device, deposit.nonce, place);
  const at = new Date(services.now()).toISOString();
  return shards.db(place).transaction(async (tx) => {
    // The row first: a concurrent copy of this part waits here, then reads this one's answer.
    const claimed = await tx.query('INSERT INTO opera_deposit_parts (id, request_digest, answer, at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING id', [id, deposit.digest, '', at]);
    if (claimed.rowCount !== 1) {
      const { rows } = await tx.query<{ request_digest: Uint8Array; answer: string }>('SELECT request_digest, answer FROM opera_deposit_parts WHERE id = $1', [id]);
      const row = rows[0];
      // The home's nonce row keeps one request per nonce, so a part under this id is this request's.
      if (row === undefined || compareBytes(new Uint8Array(row.request_digest), deposit.digest) !== 0) throw new Error(`deposit part ${id} on ${place} belongs to another request`);
      return { answer: JSON.parse(row.answer) as PartAnswer };
    }
    // In the order of their serials, so that concurrent deposits lock rows in one order.
    const order = [...deposit.indices].sort((a, b) => compareBytes((deposit.tokens[a] as Token).body.serial, (deposit.tokens[b] as Token).body.serial));
    // Each (serial, value) spent once, its first copy in order (as node-deposit.ts does).
    const key = (token: Token) => `${toHex(token.body.serial)}:${token.body.value}`;
    const firsts = new Map<string, number>();
    for (const i of order) {
      const token = deposit.tokens[i] as Token;
      if (!firsts.has(key(token))) firsts.set(key(token), i);
    }
    const spending = [...firsts.values()].map((i) => deposit.tokens[i] as Token);
    const moved = await tx.query<{ serial: Uint8Array; value: string }>(
      `UPDATE opera_shard_tokens t SET state = 'deposited', spent_by = $4, spent_at = $5, tags = decode(NULLIF(x.tags, ''), 'hex')
       FROM unnest($1::text[], $2::bigint[], $3::text[]) AS x(serial, value, tags)
       WHERE t.serial = decode(x.serial, 'hex') AND t.value = x.value AND t.state = 'issued'
       RETURNING t.serial, t.value::text AS value`,
      [spending.map((t) => toHex(t.body.serial)), spending.map((t) => t.body.value), spending.map((t) => toHex(encodeTags(tagsOf(t)) ?? new Uint8Array())), deposit.device, at],
    );
    const spent = new Set(moved.rows.map((r) => `${toHex(new Uint8Array(r.serial))}:${r.value}`));
    const tokens: Array<PartAnswer['tokens'][number]> = [];
    const settled = new Set<string>();
    let credited = 0n;
    for (const i of order) {
      const token = deposit.tokens[i] as Token;
      const serial = toHex(token.body.serial);
      // A serial listed twice is settled once: its later copies are refused.
      if (settled.has(serial)) tokens.push({ i, outcome: 'refused' });
      else if (spent.has(key(token)) && firsts.get(key(token)) === i) {
        settled.add(serial);
        credited += token.body.value;
        tokens.push({ i, outcome: 'credited' });
      } else {
        const { rows } = await tx.query<SpentRow>('SELECT state, spent_by, tags FROM opera_shard_tokens WHERE serial = $1 AND value = $2', [token.body.serial, token.body.value]);
        const row = rows[0];
        if (row === undefined) tokens.push({ i, outcome: 'refused' });
        else {
          settled.add(serial);
          // The copy is kept here as evidence; the home opens the two copies' tags.
          await tx.query('INSERT INTO opera_shard_double_spends (serial, device_key_id, tags, at) VALUES ($1, $2, $3, $4)', [token.body.serial, deposit.device, encodeTags(tagsOf(token)), at]);
          const firstTags = row.state === 'deposited' && row.tags !== null ? toHex(new Uint8Array(row.tags)) : null;
          tokens.push({ i, outcome: 'double-spend', first: row.spent_by, firstTags });
        }
      }
    }
    let sent: { id: string; to: Party } | undefined;
    if (credited > 0n) {
      const moving = await sendAcross(tx, place, { id, to: 'home', debit: OPERA_FLOAT_ACCOUNT, credit: deposit.account, amount: credited, kind: DEPOSIT_CROSSING_KIND, reference: { device: deposit.device, tokens: tokens.filter((t) => t.outcome === 'credited').length } });
      // Thrown: the tokens spent above roll back with the credit that cannot be sent.
      if (!moving.ok) throw new ApiProblem(moving.code, `the deposit cannot be credited: ${moving.message}`);
      sent = { id, to: 'home' };
    }
    const answer: PartAnswer = { credited: credited.toString(), tokens };
    await tx.query('UPDATE opera_deposit_parts SET answer = $2 WHERE id = $1', [id, JSON.stringify(answer)]);
    return { answer, sent };
  });
}

/**
 * `POST /v1/opera/deposit` on a node with shard databases: the nonce claimed at home, the parts
 * settled on their shards, then the findings and the receipt at home.
 * @throws ApiProblem as answerOnce does; SHARD_UNAVAILABLE when a shard's database did not answer (the parts settled stay settled: send the same request again)
 */
export async function depositOnShards(
  services: IssuerServices,
  places: readonly Party[],
  request: SignedRequest<DepositRequestBody>,
  judged: { readonly checked: readonly boolean[]; readonly foreign: ReadonlyArray<TokenIssuer | undefined> },
): Promise<Response> {
  const { user, device } = request;
  const opened = await services.db.transaction(async (tx) => {
    const checked = await checkRequest(tx, services, request);
    const claim = await claimNonce(tx, services, request, checked);
    return { checked, answer: claim.answer };
  });
  if (opened.answer !== null) return answerResponse(opened.answer, true);
  const { body, digest } = opened.checked;
  const parts = [...byPlace(body.tokens, places, (i) => judged.checked[i] === true)];
  const settled = await Promise.allSettled(parts.map(([place, indices]) => settlePart(services, place, { device, account: user.accountId, nonce: body.nonce, digest, tokens: body.tokens, indices })));
  const failed = settled.flatMap((s, k) => (s.status === 'rejected' ? [{ place: (parts[k] as [Party, number[]])[0], reason: s.reason as unknown }] : []));
  // The credits of the parts settled go home now, whatever became of the others (the relay's stream delivers any that cannot).
  await Promise.all(
    settled.map((s, k) => {
      const sent = s.status === 'fulfilled' ? s.value.sent : undefined;
      return sent === undefined ? undefined : services.crossings?.deliver((parts[k] as [Party, number[]])[0], [sent]);
    }),
  );
  const refusal = failed.find((f) => f.reason instanceof ApiProblem);
  if (refusal !== undefined) throw refusal.reason;
  // A part that failed for another reason than its database not answering is a fault of the node:
  // thrown as it is (an internal error, logged), not answered as something to try again.
  const fault = failed.find((f) => !isUnavailable(f.reason));
  if (fault !== undefined) throw fault.reason;
  if (failed.length > 0) {
    const places = failed.map((f) => f.place);
    // The driver's words (hosts, ports, the server's messages) are not the caller's to read.
    throw new ApiProblem('SHARD_UNAVAILABLE', `the deposit's tokens on ${places.join(', ')} could not be settled: their shard database did not answer; the other parts are settled: send the same request again`, { places });
  }
  const answers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const { text, replayed } = await services.db.transaction(async (tx) => {
    const again = await claimNonce(tx, services, request, opened.checked);
    // A concurrent copy of this request finished first: its answer is the answer.
    if (again.answer !== null) return { text: again.answer, replayed: true };
    const at = new Date(services.now()).toISOString();
    const outcomes: DepositOutcome[] = body.tokens.map(() => 'refused');
    let credited = 0n;
    for (const { answer } of answers) {
      credited += BigInt(answer.credited);
      for (const t of answer.tokens) {
        outcomes[t.i] = t.outcome;
        if (t.outcome !== 'double-spend') continue;
        const token = body.tokens[t.i] as Token;
        await recordFinding(tx, services, { kind: 'double-spend', serial: token.body.serial, device, first: t.first ?? null });
        await attributeDoubleSpend(tx, services, { serial: token.body.serial, device, tags: tagsOf(token) }, { firstTags: t.firstTags === null || t.firstTags === undefined ? null : fromHex(t.firstTags) });
      }
    }
    // Other banks' tokens are presented from home, as on a node without shards.
    const claims: Array<{ [key: string]: JsonValue }> = [];
    const presented = new Set<string>();
    for (const [i, token] of body.tokens.entries()) {
      const issuer = judged.foreign[i];
      if (judged.checked[i] === true || issuer === undefined) continue;
      const serial = toHex(token.body.serial);
      if (presented.has(serial)) continue;
      presented.add(serial);
      const done = await presentForeignToken(tx, services, { token, issuer, device, holder: user, at });
      if ('presented' in done) {
        outcomes[i] = 'presented';
        claims.push({ serial, ...Object.fromEntries(Object.entries(done.presented)) });
      } else outcomes[i] = 'double-spend';
    }
    const receipt = signed(depositReceiptBodyCodec, services.identity.issuerNode.signer, DEPOSIT_RECEIPT_TAG, {
      nonce: body.nonce,
      tokens: body.tokens.map((token, i) => ({ serial: token.body.serial, outcome: outcomes[i] as DepositOutcome })),
      credited,
    });
    const answered = JSON.stringify({ credited: formatMinor(services.currency, credited), receipt: toBase64url(encodeCbor(receipt)), ...(claims.length === 0 ? {} : { claims }) });
    await storeAnswer(tx, request, body.nonce, answered);
    return { text: answered, replayed: false };
  });
  return answerResponse(text, replayed);
}
