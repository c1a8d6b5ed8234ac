/** `tally operator oem`: the factory step for software secure elements. */
import type { Scheme } from '../../schemes/index.ts';
import { HOME_OPTION, JSON_OPTION, nodeUrl, OPERATOR_FLAGS, OPERATOR_OPTIONS, operatorToken, parse, type Verb } from '../plugin.ts';

/** The verb over the registry's schemes: it allows every scheme's trusted apps. */
export function operatorOem(schemes: readonly Scheme[]): Verb {
  const builds = schemes.flatMap((s) => s.wallet.trustedApps);
  return {
    usage: 'tally operator oem [--node URL] [--token T | --data DIR] [--home DIR] [--json]',
    summary: "Operator, the factory step: creates this home's software OEM key if needed, enrols it at the node and allows the current builds of the trusted apps of every scheme the node serves. Run it once per home and node (again when the node serves more schemes), before creating wallets with a secure element.",
    options: [...OPERATOR_OPTIONS, HOME_OPTION, JSON_OPTION],
    example: 'tally operator oem --data ./tally-data',
    async run(argv, io) {
      const { values } = parse(argv, OPERATOR_FLAGS, []);
      // The factory and the node client load only when this verb runs.
      const [{ enrollOem }, { resolveHome }, { NodeClient }] = await Promise.all([import('../../wallet/factory.ts'), import('../../wallet/home.ts'), import('../../wallet/node-client.ts')]);
      const home = resolveHome(values.home, io.env);
      const node = new NodeClient(nodeUrl(values.node, io.env));
      const result = await enrollOem(home, node, await operatorToken(values, io.env), builds);
      return {
        text: `${result.created ? 'Created' : 'Reused'} the software OEM key ${result.keyId} in ${home}; enrolled at ${node.url}; trusted app builds allowed: ${result.measurements.map((m) => `${m.scheme} ${m.measurement}`).join(', ')}.`,
        json: { home, node: node.url, oem: result.keyId, measurement: result.measurement, measurements: result.measurements, created: result.created },
      };
    },
  };
}
