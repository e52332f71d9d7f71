// bree job: the organize stage (src/pipeline/stages/organize.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { organizeStudy, type OrganizeInput } from '../src/pipeline/stages/organize.js';

hostStage((input: OrganizeInput) => organizeStudy(input));
