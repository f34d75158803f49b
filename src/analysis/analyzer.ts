/**
 * The analyzer an analysis worker runs: the LLM one when VOICEPONCE_LLM_URL is set (falling back to the
 * built-in one whenever the model fails), else the built-in offline analyzer.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { metrics } from '../metrics.js';
import type { Analyzer } from './result.js';
import { BuiltinAnalyzer } from './builtin/index.js';
import { LlmAnalyzer } from './llm.js';

export function createAnalyzer(config: Config, log: Logger): Analyzer {
  const builtin = new BuiltinAnalyzer();
  const llm = config.analysis.llm;
  if (!llm) return builtin;
  return new LlmAnalyzer({
    url: llm.url, model: llm.model, key: llm.key, fallback: builtin, log,
    onOutcome: (o) => metrics.llmOutcomes.labels(o).inc(),
  });
}
