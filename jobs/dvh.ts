// bree job: the DVH stage (src/pipeline/stages/dvh.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { dvhStage } from '../src/pipeline/stages/dvh.js';

hostStage(dvhStage);
