/**
 * The two tiers on the command line: the central bank's operator verbs (`tally cb approve`,
 * `refuse`, `issue`, `revoke`, `intermediaries`, `audit`, against a node started with
 * `tally cb start`), an intermediary's enrolment (`tally node enrol`) and its reserve
 * (`tally node reserve`).
 */
import { toHex } from '../../core/bytes.ts';
import { TallyError } from '../../core/errors.ts';
import { JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, UsageError, type Outcome, type Verb, type VerbIo } from '../plugin.ts';

const CB_NODE_NOTE = 'the central bank node (--node URL, else $TALLY_NODE)';
const KEY_ID = /^[0-9a-f]{64}$/;

function requireKeyId(text: string): string {
  if (!KEY_ID.test(text)) throw new UsageError(`KEYID: expected the intermediary's key id, 64 lower-case hex digits (tally cb intermediaries lists them), got ${JSON.stringify(text)}`);
  return text;
}

type Answer = Record<string, unknown>;

async function operatorCall(values: Record<string, unknown>, io: VerbIo, method: 'GET' | 'POST', path: string, body?: Record<string, string>): Promise<Answer> {
  const { NodeClient } = await import('../../wallet/node-client.ts');
  // The whole answer, as the node gave it: each verb prints the fields it knows and --json all of them.
  const answer = await new NodeClient(nodeUrl(values['node'], io.env)).operator(await operatorToken(values, io.env), method, path, {
    ...(method === 'POST' ? { body: body ?? {}, idempotencyKey: `cb-${toHex(crypto.getRandomValues(new Uint8Array(12)))}` } : {}),
  });
  const got = answer.body;
  if (typeof got !== 'object' || got === null || Array.isArray(got)) throw new TallyError('DECODE_FAILED', `the node answered ${path} with something that is not a JSON object`, { path, expected: 'a JSON object', got: typeof got });
  return got as Answer;
}

const text = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

function cbVerb(name: string, words: readonly string[], summary: string, example: string, run: (args: string[], values: Record<string, unknown>, io: VerbIo) => Promise<Outcome>): Verb {
  return {
    usage: `tally cb ${name}${words.length === 0 ? '' : ` ${words.join(' ')}`} [--node URL] [--token T | --data DIR] [--json]`,
    summary,
    options: [...OPERATOR_OPTIONS, JSON_OPTION],
    example,
    async run(argv, io) {
      const { values, args } = parse(argv, OPERATOR_FLAGS, [...words]);
      return run(args, values, io);
    },
  };
}

const cbApprove = cbVerb(
  'approve',
  ['KEYID'],
  `Central bank operator: approves an intermediary's enrolment request; the root certifies its key and opens its reserve. KEYID is the key id its \`tally node enrol\` printed. Talks to ${CB_NODE_NOTE}.`,
  'tally cb approve 3f1c...e9 --node http://127.0.0.1:9000 --data ./cb-data',
  async ([keyId = ''], values, io) => {
    const a = await operatorCall(values, io, 'POST', `/v1/cb/operator/enrolments/${requireKeyId(keyId)}/approve`);
    return { text: `Approved ${text(a['name'])} (${text(a['keyId'])}): its key is certified by the root; its node can start (tally node start --data ...).`, json: a };
  },
);

const cbRefuse = cbVerb(
  'refuse',
  ['KEYID', 'REASON'],
  `Central bank operator: refuses an intermediary's enrolment request, with a reason it will read. Talks to ${CB_NODE_NOTE}.`,
  "tally cb refuse 3f1c...e9 'not supervised' --data ./cb-data",
  async ([keyId = '', reason = ''], values, io) => {
    const a = await operatorCall(values, io, 'POST', `/v1/cb/operator/enrolments/${requireKeyId(keyId)}/refuse`, { reason });
    return { text: `Refused ${text(a['name'])} (${text(a['keyId'])}): ${reason}.`, json: a };
  },
);

const cbIssue = cbVerb(
  'issue',
  ['KEYID', 'AMOUNT'],
  `Central bank operator: issues AMOUNT (decimal major units, such as 1000.00) of the currency into an intermediary's reserve; the intermediary may then put as much into its customers' accounts (tally operator mint at its node). Talks to ${CB_NODE_NOTE}.`,
  'tally cb issue 3f1c...e9 1000.00 --data ./cb-data',
  async ([keyId = '', amount = ''], values, io) => {
    const a = await operatorCall(values, io, 'POST', '/v1/cb/operator/issue', { intermediary: requireKeyId(keyId), amount });
    const t = (a['transfer'] ?? {}) as Answer;
    return { text: `Issued ${text(t['amount'])} ${text(t['currency'])} into the reserve of ${text(a['name'])} (transfer ${text(t['id'])}).`, json: { intermediary: a['intermediary'], name: a['name'], amount: t['amount'], currency: t['currency'], transfer: t['id'] } };
  },
);

const cbRevoke = cbVerb(
  'revoke',
  ['KEYID', 'REASON'],
  `Central bank operator: revokes an intermediary: the root signs the next list of revoked intermediaries, which every node syncs; nothing more is issued to it. Talks to ${CB_NODE_NOTE}.`,
  "tally cb revoke 3f1c...e9 'licence withdrawn' --data ./cb-data",
  async ([keyId = '', reason = ''], values, io) => {
    const a = await operatorCall(values, io, 'POST', '/v1/cb/operator/revoke', { intermediary: requireKeyId(keyId), reason });
    return { text: a['already'] === true ? `${text(a['name'])} was revoked already (list version ${text(a['version'])}).` : `Revoked ${text(a['name'])}: list version ${text(a['version'])}.`, json: a };
  },
);

const cbIntermediaries = cbVerb(
  'intermediaries',
  [],
  `Central bank operator: lists the intermediaries: enrolment requests waiting, approved and revoked ones, each with its reserve and its last report of its books. Talks to ${CB_NODE_NOTE}.`,
  'tally cb intermediaries --data ./cb-data',
  async (_args, values, io) => {
    const a = await operatorCall(values, io, 'GET', '/v1/cb/intermediaries');
    const list = (a['intermediaries'] ?? []) as Answer[];
    const lines = list.length === 0 ? ['No intermediary has asked to be enrolled.'] : list.map((i) => `${text(i['keyId'])}  ${text(i['name'])}  ${text(i['status'])}  reserve ${text(i['reserve'])}${typeof i['problem'] === 'string' ? `  (${i['problem']})` : ''}`);
    return { text: lines.join('\n'), json: a };
  },
);

const cbAudit = cbVerb(
  'audit',
  [],
  `Central bank operator: the system's audit: the interbank ledger balanced (issued = the sum of reserves), and each intermediary's last report of its books covering every movement of its reserve and agreeing with it. Talks to ${CB_NODE_NOTE}.`,
  'tally cb audit --data ./cb-data',
  async (_args, values, io) => {
    const a = await operatorCall(values, io, 'GET', '/v1/cb/audit');
    const cur = text(a['currency']);
    const list = (a['intermediaries'] ?? []) as Answer[];
    const lines = [
      `System audit: ${a['balanced'] === true ? 'balanced' : 'NOT BALANCED'}.`,
      `Interbank ledger ${a['ledgerBalanced'] === true ? 'balanced' : 'NOT BALANCED'}: issued ${text(a['issued'])} ${cur} = reserves ${text(a['reserves'])} ${cur}.`,
      ...list.map((i) => {
        const r = (i['reported'] ?? null) as Answer | null;
        const books = r === null ? 'no report yet' : `its books: reserve ${text(r['reserve'])} = online ${text(r['online'])} + offline float ${text(r['offlineFloat'])} + settlement ${text(r['settlement'])} + not yet allocated ${text(r['unallocated'])} ${cur}`;
        return `${text(i['name'])} (${text(i['status'])}): reserve ${text(i['reserve'])} ${cur}; ${books}${i['balanced'] === true ? '' : `  <- ${text(i['problem'])}`}`;
      }),
    ];
    return { text: lines.join('\n'), json: a };
  },
);

const nodeReserve: Verb = {
  usage: 'tally node reserve [--node URL] [--token T | --data DIR] [--json]',
  summary: "Intermediary operator: syncs the node with its central bank now (the movements of its reserve, the list of revoked intermediaries, the report of its books) and shows its reserve. The node also syncs every few seconds on its own.",
  options: [...OPERATOR_OPTIONS, JSON_OPTION],
  example: 'tally node reserve --node http://127.0.0.1:8081 --data ./bank-a',
  async run(argv, io) {
    const { values } = parse(argv, OPERATOR_FLAGS, []);
    const a = await operatorCall(values, io, 'POST', '/v1/operator/reserve/sync');
    const cur = text(a['currency']);
    return {
      text: `Reserve at ${text(a['centralBank'])}: ${text(a['reserve'])} ${cur}, of which ${text(a['unallocated'])} ${cur} is in no customer's account yet (${text(a['recorded'])} new movements, up to ${text(a['cursor'])}).${a['revoked'] === true ? '\nThe central bank has REVOKED this intermediary.' : ''}`,
      json: a,
    };
  },
};

const ENROL_FLAGS = {
  data: { type: 'string', default: './tally-data' },
  'central-bank': { type: 'string' },
  name: { type: 'string' },
  root: { type: 'string' },
  suite: { type: 'string' },
  wait: { type: 'string' },
} as const;

const nodeEnrol: Verb = {
  usage: 'tally node enrol --central-bank URL [--name NAME] [--root KEYID] [--data DIR] [--suite ed25519|p256|sm2] [--wait SECONDS] [--json]',
  summary:
    "Makes the data folder an intermediary of a central bank: a new intermediary key (sealed like a node's keys, with $TALLY_NODE_PASSPHRASE or a generated passphrase in the folder) and a request, signed by that key, that the central bank's operator approves (tally cb approve KEYID). Run it again, or with --wait, to learn the decision; once approved, the node's identity is made around the root's certificate and `tally node start --data DIR` runs the intermediary. --root pins the central bank's root key id (printed at its start); without it the root first seen is taken and shown.",
  options: [
    ['--central-bank URL', 'the central bank node (tally cb start)'],
    ['--name NAME', "the intermediary's name, as its certificate will carry it (the first time)"],
    ['--root KEYID', "the central bank's root key id to expect (64 hex digits); nothing is made or sent if it differs"],
    ['--data DIR', 'the data folder of the intermediary node (default ./tally-data)'],
    ['--suite NAME', "the suite of the intermediary's keys (default: the root's)"],
    ['--wait SECONDS', "wait this long for the central bank's decision"],
    JSON_OPTION,
  ],
  example: "tally node enrol --central-bank http://127.0.0.1:9000 --name 'Bank A' --data ./bank-a --wait 300",
  async run(argv, io) {
    const { values } = parse(argv, ENROL_FLAGS, []);
    const centralBank = values['central-bank'];
    if (centralBank === undefined || !/^https?:\/\/\S+$/.test(centralBank)) throw new UsageError(`--central-bank: expected the central bank's http:// or https:// URL, got ${JSON.stringify(centralBank ?? '')}`);
    if (values.root !== undefined) requireKeyId(values.root);
    const suite = values.suite;
    if (suite !== undefined && suite !== 'ed25519' && suite !== 'p256' && suite !== 'sm2') throw new UsageError(`--suite: expected ed25519, p256 or sm2, got ${JSON.stringify(suite)}`);
    const waitS = values.wait === undefined ? 0 : Number(values.wait);
    if (!Number.isFinite(waitS) || waitS < 0) throw new UsageError(`--wait: expected seconds, got ${JSON.stringify(values.wait)}`);
    if (values.name !== undefined && (values.name.length === 0 || values.name.length > 100)) throw new UsageError('--name: 1 to 100 characters');
    const [{ resolve }, { enrol }, { resolvePassphrase }, { nodeProvider }, { readPendingEnrolment }] = await Promise.all([
      import('node:path'),
      import('../../issuer/tier/enrol.ts'),
      import('../../issuer/identity/passphrase.ts'),
      import('../../providers/node-crypto.ts'),
      import('../../issuer/identity/enrolment.ts'),
    ]);
    const dataDir = resolve(values.data);
    const passphrase = await resolvePassphrase({ dataDir, env: io.env });
    if (values.name === undefined && (await readPendingEnrolment(dataDir, passphrase.passphrase, nodeProvider)) === null) throw new UsageError('--name: the first enrolment of a data folder needs the intermediary\'s name');
    io.progress(`asking ${centralBank} to enrol ${dataDir}`);
    const outcome = await enrol({
      dataDir,
      passphrase: passphrase.passphrase,
      provider: nodeProvider,
      centralBank,
      name: values.name,
      suite,
      rootKeyId: values.root,
      waitMs: waitS * 1000,
      onWaiting: (status) => io.progress(`waiting for the central bank's operator: tally cb approve ${status.keyId}`),
      now: () => Date.now(),
    });
    const lines = [
      `${outcome.requested ? 'Asked' : 'Looked up the request of'} ${outcome.name} at ${outcome.centralBank} (root ${outcome.rootKeyId}${values.root === undefined && outcome.requested ? ', first seen: check it with the central bank' : ''}).`,
      `Key id ${outcome.keyId}: ${outcome.status}.`,
      outcome.completed
        ? `The identity is made: start the intermediary with tally node start --data ${dataDir}.`
        : `The central bank's operator approves it with: tally cb approve ${outcome.keyId}; then run this again (or tally node start --data ${dataDir}).`,
      ...(passphrase.warning === undefined ? [] : [passphrase.warning]),
    ];
    return { text: lines.join('\n'), json: { ...outcome, dataDir } };
  },
};

/** The verbs of the two tiers, by their words. */
export const TIER_VERBS: Record<string, Verb> = {
  'node enrol': nodeEnrol,
  'node reserve': nodeReserve,
  'cb approve': cbApprove,
  'cb refuse': cbRefuse,
  'cb issue': cbIssue,
  'cb revoke': cbRevoke,
  'cb intermediaries': cbIntermediaries,
  'cb audit': cbAudit,
};
