// The cheapest useful onCommand tap (bench only): looks at every COM_QUERY and lets it through.
// Measures what tapping the hot path costs (issue: plugin framework cost).
import { definePlugin, protocol } from 'tiproxy/plugin';

let seen = 0;
export default definePlugin({
  name: 'trivial-on-command',
  version: '1.0.0',
  apply({ hooks }) {
    hooks.onCommand.for(protocol.COM_QUERY).tap('trivial-on-command', (ctx) => {
      seen += ctx.payload.length > 0 ? 1 : 0;
      return undefined;
    });
  },
  dispose() {
    seen = 0;
  },
});
