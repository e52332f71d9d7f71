// bree job: the segmentation stage (src/pipeline/stages/segmentation.ts) in a worker thread.
import { hostStage } from '../src/pipeline/job-host.js';
import { segmentationStage } from '../src/pipeline/stages/segmentation.js';

hostStage(segmentationStage);
