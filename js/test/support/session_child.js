// A second process: opens the session given on stdin over the given store and prints
// its access token.
import { GatewayAuth } from '../../src/index.js';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { store, key, client } = JSON.parse(input);
const auth = await GatewayAuth.open({ egress: ['127.0.0.1'], store });
await auth.openSession(key, client, 'client-credentials');
const token = await auth.accessToken(key);
process.stdout.write(JSON.stringify({ accessToken: token.accessToken }));
await auth.close();
await auth.store.close();
