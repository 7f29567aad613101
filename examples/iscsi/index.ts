/**
 * The iSCSI target example: importing this module registers the `iscsi` service type, so a config
 * with `{ "type": "iscsi", "vs": ..., "targets": [...] }` runs under `createStack()` and
 * `xdpstack run CONFIG`. See examples/iscsi/README.md.
 */
import { registerService } from '../../stack/control/services';
import { checkIscsi, ISCSI_KEYS } from './config';
import { IscsiService } from './service';

export { IscsiService } from './service';
export { checkIscsi, parseSize, targetSpecs } from './config';

registerService({
  type: 'iscsi',
  transport: 'tcp',
  defaultPort: 3260,
  keys: ISCSI_KEYS,
  validate: checkIscsi,
  start: (vs, spec, ctx) => new IscsiService(vs, spec, { log: ctx.log }),
});
