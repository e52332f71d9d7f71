// bree job: the QC stage (src/pipeline/stages/qc.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { qcStage } from '../src/pipeline/stages/qc.js';

hostStage(qcStage);
