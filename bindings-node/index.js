'use strict';
// The package's loader (hand-written: `napi build --no-js` writes none). It
// loads the addon `napi build --platform` puts beside it for this platform,
// `vmrestore.<platform>-<arch>[-gnu].node`; the package ships only
// x86_64-unknown-linux-gnu (package.json napi.targets).
// NAPI_RS_NATIVE_LIBRARY_PATH, when set, names another addon to load.

const path = require('node:path');

const abi = process.platform === 'linux' ? '-gnu' : '';
const file = `vmrestore.${process.platform}-${process.arch}${abi}.node`;
const addon = process.env.NAPI_RS_NATIVE_LIBRARY_PATH || path.join(__dirname, file);

let nativeBinding;
try {
  nativeBinding = require(addon);
} catch (cause) {
  const error = new Error(
    `vmrestore: cannot load the native addon for ${process.platform}-${process.arch} ` +
      `(${addon}: ${cause.message}); the package ships one for linux-x64-gnu, ` +
      'built by `npm run build`',
  );
  error.cause = cause;
  throw error;
}

module.exports = nativeBinding;
// Listed one by one so that Node's ESM import sees the names (cjs-module-lexer
// reads them statically); test/loader.test.js checks the list is the addon's.
module.exports.ArmCloud = nativeBinding.ArmCloud;
module.exports.ObjectStoreRepository = nativeBinding.ObjectStoreRepository;
module.exports.PageBlobSink = nativeBinding.PageBlobSink;
module.exports.ProgressStream = nativeBinding.ProgressStream;
module.exports.Repository = nativeBinding.Repository;
module.exports.RestoreExecutor = nativeBinding.RestoreExecutor;
module.exports.SimCloud = nativeBinding.SimCloud;
module.exports.buildDemo = nativeBinding.buildDemo;
module.exports.builtinCatalog = nativeBinding.builtinCatalog;
module.exports.builtinProfiles = nativeBinding.builtinProfiles;
module.exports.checkRules = nativeBinding.checkRules;
module.exports.demoImagePath = nativeBinding.demoImagePath;
module.exports.plan = nativeBinding.plan;
module.exports.planAsync = nativeBinding.planAsync;
module.exports.planMany = nativeBinding.planMany;
module.exports.render = nativeBinding.render;
module.exports.schema = nativeBinding.schema;
module.exports.setLogger = nativeBinding.setLogger;
