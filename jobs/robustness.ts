// bree job: the robustness stage (src/pipeline/stages/robustness.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { robustnessStage } from '../src/pipeline/stages/robustness.js';

hostStage(robustnessStage);
