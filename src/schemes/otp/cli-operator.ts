/**
 * OTP's operator verbs: the payee category a holder's exchange keys carry (which coins whose
 * program names a category may be paid to), and the double spends the node found through the
 * escrow tags, with the devices it named and revoked.
 */
import { HOME_OPTION, JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, UsageError, type Verb } from '../../cli/plugin.ts';

const CATEGORY = /^[a-z0-9][a-z0-9-]{0,31}$/;

/** The holder's user key id and node: a key id as given, or the wallet NAME of this home. */
async function holder(target: string, home: string | undefined, env: Readonly<Record<string, string | undefined>>): Promise<{ keyId: string; node: string | null }> {
  if (/^[0-9a-f]{64}$/.test(target)) return { keyId: target, node: null };
  const { holderOf } = await import('./wallet.ts');
  return holderOf(home, env, target);
}

/** `tally operator otp-category`. */
const category: Verb = {
  usage: 'tally operator otp-category ACCOUNT CATEGORY|none [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
  summary:
    "Operator, OTP: sets the payee category the holder's exchange keys carry from now on (lower-case letters, digits and dashes; `none` removes it). A coin whose program names categories is paid only to payees of one of them. ACCOUNT is the holder's user key id or the NAME of a wallet of this home.",
  options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
  example: 'tally operator otp-category shop grocery',
  async run(argv, io) {
    const { values, args } = parse(argv, OPERATOR_FLAGS, ['ACCOUNT', 'CATEGORY']);
    const [target, named] = args as [string, string];
    if (named !== 'none' && !CATEGORY.test(named)) throw new UsageError(`CATEGORY: expected lower-case letters, digits and dashes (at most 32), or none; got ${JSON.stringify(named)}`);
    const who = await holder(target, typeof values.home === 'string' ? values.home : undefined, io.env);
    const url = values.node === undefined && who.node !== null ? who.node : nodeUrl(values.node, io.env);
    const { operatorCall } = await import('./wallet.ts');
    await operatorCall(url, await operatorToken(values, io.env), 'POST', '/v1/otp/operator/categories', { account: who.keyId, category: named === 'none' ? null : named });
    const shown = named === 'none' ? 'no category' : `category ${named}`;
    return { text: `The exchange keys of ${target} carry ${shown} from their next sync.`, json: { account: who.keyId, category: named === 'none' ? null : named } };
  },
};

interface Finding {
  serial: string;
  hop: number;
  device: string;
  reason?: string;
  revocationVersion: number | null;
  at: string;
}

interface Dispute {
  serial: string;
  hop: number;
  devices: string[];
  at: string;
}

/** `tally operator otp-findings`. */
const findings: Verb = {
  usage: 'tally operator otp-findings [--node URL] [--token T | --data DIR] [--json]',
  summary:
    'Operator, OTP: the devices named and revoked by the node: each that paid a coin twice (deposited twice, or reported in flight on two branches), with the hop where the copies part, and each that signed an escrow tag for a coin it never held (the exchange key paid before was signed for another device); then the coins in flight left unrefunded because two devices signed where their claims part.',
  options: [...OPERATOR_OPTIONS, JSON_OPTION],
  example: 'tally operator otp-findings --json',
  async run(argv, io) {
    const { values } = parse(argv, OPERATOR_FLAGS, []);
    const { operatorCall } = await import('./wallet.ts');
    const answer = (await operatorCall(nodeUrl(values.node, io.env), await operatorToken(values, io.env), 'GET', '/v1/otp/operator/findings')) as { findings?: Finding[]; disputes?: Dispute[] };
    const list = Array.isArray(answer.findings) ? answer.findings : [];
    const disputes = Array.isArray(answer.disputes) ? answer.disputes : [];
    const lines = list.length === 0 ? ['No coin was paid twice.'] : list.map((f) => `${f.at}  coin ${f.serial.slice(0, 16)}…  ${f.reason === 'tag-without-coin' ? `tag ${f.hop} signed for a coin it never held` : `parts at hop ${f.hop}`}  device ${f.device}${f.revocationVersion === null ? '' : ` revoked (list version ${f.revocationVersion})`}`);
    if (disputes.length > 0) {
      lines.push('', 'Coins in flight not refunded (their claims part at a hop two devices signed):');
      for (const d of disputes) lines.push(`${d.at}  coin ${d.serial.slice(0, 16)}…  parts at hop ${d.hop}  devices ${d.devices.join(', ')}`);
    }
    return { text: lines.join('\n'), json: { findings: list, disputes } };
  },
};

/** OTP's operator verbs, by their words. */
export const otpOperatorVerbs: Readonly<Record<string, Verb>> = {
  'operator otp-category': category,
  'operator otp-findings': findings,
};
