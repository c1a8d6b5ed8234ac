/** `tally audit`: the node's audit of its ledger and of what moved offline. */
import { JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, type Verb } from '../plugin.ts';

/** The verb. */
export const audit: Verb = {
  usage: 'tally audit [--node URL] [--token T | --data DIR] [--json]',
  summary: "Operator: the node's audit of its ledger: the money issued must equal the online accounts plus the offline float.",
  options: [...OPERATOR_OPTIONS, JSON_OPTION],
  example: 'tally audit --data ./tally-data',
  async run(argv, io) {
    const { values } = parse(argv, OPERATOR_FLAGS, []);
    const [{ NodeClient }, { auditAnswer, withRaw }] = await Promise.all([import('../../wallet/node-client.ts'), import('../../wallet/node-answers.ts')]);
    const node = new NodeClient(nodeUrl(values.node, io.env));
    type Exposure = { scheme: string; floatAccount: string; float: string; expected: string; difference: string; attributed: string; unexplained: string; balanced: boolean; exposed: { device: string; amount: string; fraud: boolean }[] };
    type Audit = {
      balanced: boolean;
      ledgerBalanced: boolean;
      currency: string;
      currencies: { currency: string; totalIssued: string; totalOnline: string; totalSettlement?: string | undefined; totalReserves?: string | undefined; totalOfflineFloat: string; totalClearing?: string | undefined; balanced: boolean }[];
      exposure: Exposure[];
      problemCount: number;
      transferCount: number;
      floatsUnchecked?: { account: string; amount: string }[] | undefined;
      schemes?: { scheme: string; balanced: boolean; lines: string[] }[] | undefined;
      shards?: ShardsPart | undefined;
    };
    const answer = await node.operator(await operatorToken(values, io.env), 'GET', '/v1/audit', { answer: withRaw(auditAnswer) });
    const body: Audit = answer.body.value;
    const cur = body.currency;
    const lines = [
      `Audit: ${body.balanced ? 'balanced' : 'NOT BALANCED'}.`,
      `Ledger ${body.ledgerBalanced ? 'balanced' : 'NOT BALANCED'} (${body.transferCount} transfers, ${body.problemCount} problems).`,
      ...body.currencies.map((c) => {
        // Settlement and reserves are shown only where they hold something (reserves: the two tiers).
        const more = [...(isZero(c.totalSettlement) ? [] : [`settlement ${c.totalSettlement ?? ''}`]), ...(isZero(c.totalReserves) ? [] : [`reserves ${c.totalReserves ?? ''}`])];
        const clearing = isZero(c.totalClearing) ? [] : [`clearing ${c.totalClearing ?? ''}`];
        return `${c.currency}: issued ${c.totalIssued} = online ${c.totalOnline} + ${[...more, `offline float ${c.totalOfflineFloat}`, ...clearing].join(' + ')} ${c.currency}${c.balanced ? '' : '  <- does not add up'}`;
      }),
      ...body.exposure.flatMap((e) => [
        `${e.scheme}: ${e.floatAccount} holds ${e.float} ${cur}; devices and payees are known to be owed ${e.expected} ${cur}; difference ${e.difference} ${cur}` +
          (e.balanced ? '' : `, of which ${e.unexplained} ${cur} nobody is named for yet  <- value created offline, or devices that have not synced`),
        ...e.exposed.map((h) => `  device ${h.device} paid out ${h.amount} ${cur} more than the node knows it received${h.fraud ? ' (named in a fraud case)' : ''}`),
      ]),
      ...(body.floatsUnchecked ?? []).map((f) => `${f.account} holds ${f.amount} ${cur} of a scheme this node does not serve now: its devices' holdings are not compared`),
      ...(body.schemes ?? []).flatMap((s) => [`${s.scheme}: ${s.balanced ? 'balanced' : 'NOT BALANCED'}`, ...s.lines.map((line) => `  ${line}`)]),
      ...shardLines(body.shards, cur),
    ];
    return { text: lines.join('\n'), json: answer.body.raw };
  },
};

/** The node's shard databases, one line each, and what is in flight between them. */
interface ShardsPart {
  balanced: boolean;
  places: { place: string; balanced: boolean; online: string; offlineFloat: string; clearing: string }[];
  inFlight: { from: string; to: string; count: number; amount: string }[];
  problems: string[];
}

function shardLines(shards: ShardsPart | undefined, cur: string): string[] {
  if (shards === undefined) return [];
  return [
    `Shard databases: ${shards.balanced ? 'balanced' : 'NOT BALANCED'} over ${shards.places.length} databases.`,
    ...shards.places.map((p) => `  ${p.place}: online ${p.online} + offline float ${p.offlineFloat} + clearing ${p.clearing} ${cur}${p.balanced ? '' : '  <- does not add up'}`),
    ...(shards.inFlight.length === 0 ? ['  nothing in flight between them'] : shards.inFlight.map((f) => `  in flight ${f.from} -> ${f.to}: ${f.count} credit${f.count === 1 ? '' : 's'}, ${f.amount} ${cur}`)),
    ...shards.problems.map((p) => `  problem: ${p}`),
  ];
}

/** True for an amount the audit shows as zero ("0", "0.00"), or does not show. */
function isZero(amount: string | undefined): boolean {
  return amount === undefined || /^0(\.0+)?$/.test(amount);
}
