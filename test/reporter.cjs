'use strict';
// Mocha's Spec reporter plus one machine-readable summary line at the very
// end, `N passed, N failed` (`, N skipped` when tests were skipped), which
// .ci/run greps from the log and repeats as its last line. Just before it,
// when tests were skipped for want of a system part, one line names the
// parts and the command that installs them (test/harness/real.ts keeps
// them under a global symbol: this file is CommonJS and cannot import it).

const { reporters } = require('mocha');

class SummaryReporter extends reporters.Spec {
  // Spec calls this.epilogue() on run end, so the override runs after the
  // usual summary and failure list: nothing the reporter writes follows it.
  epilogue(...args) {
    super.epilogue(...args);
    const { passes = 0, failures = 0, pending = 0 } = this.stats;
    const skipped = pending > 0 ? `, ${pending} skipped` : '';
    const missing = globalThis[Symbol.for('ddt.test.missing-parts')];
    const line = missing ? missing.line() : '';
    if (line) reporters.Base.consoleLog(line);
    reporters.Base.consoleLog(`${passes} passed, ${failures} failed${skipped}`);
  }
}

SummaryReporter.description = 'spec, then a final "N passed, N failed" line';
module.exports = SummaryReporter;
