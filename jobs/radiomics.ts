// bree job: the radiomics stage (src/pipeline/stages/radiomics.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { radiomicsStage } from '../src/pipeline/stages/radiomics.js';

hostStage(radiomicsStage);
