// bree job: the organize stage (src/pipeline/stages/organize.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { organizeStage } from '../src/pipeline/stages/organize.js';

hostStage(organizeStage);
