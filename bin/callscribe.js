#!/usr/bin/env node
// The callscribe command: the roles are in gateway/cli.ts, built to dist/ by `npm run build`.
import '../dist/gateway/cli.js';
