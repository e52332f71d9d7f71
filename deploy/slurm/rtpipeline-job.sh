#!/bin/bash
# One cohort in one SLURM job, with the Apptainer image (rtpipeline.def).
#   sbatch deploy/slurm/rtpipeline-job.sh /scratch/$USER/cohort /scratch/$USER/rtpipeline_output
# Workers: SLURM confines the job to --cpus-per-task CPUs (affinity mask and cgroup), which the
# node reads: 16 CPUs -> 15 workers, no --max-workers needed.
#SBATCH --job-name=rtpipeline
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=48:00:00
#SBATCH --gres=gpu:1
#SBATCH --output=rtpipeline_%j.out
set -euo pipefail

INPUT_DIR=${1:?usage: sbatch rtpipeline-job.sh INPUT_DIR OUTPUT_DIR [LOGS_DIR]}
OUTPUT_DIR=${2:?usage: sbatch rtpipeline-job.sh INPUT_DIR OUTPUT_DIR [LOGS_DIR]}
LOGS_DIR=${3:-$OUTPUT_DIR/Logs}
SIF=${RTPIPELINE_SIF:-$HOME/containers/rtpipeline.sif}
[ -f "$SIF" ] || { echo "rtpipeline.sif not found at $SIF (apptainer build rtpipeline.sif rtpipeline.def, or set RTPIPELINE_SIF)" >&2; exit 2; }

# module load apptainer    # on clusters that use environment modules
mkdir -p "$OUTPUT_DIR" "$LOGS_DIR"

# Tool timeouts: raise them for large cohorts on slow nodes.
export APPTAINERENV_TOTALSEG_TIMEOUT=${TOTALSEG_TIMEOUT:-3600}
export APPTAINERENV_DCM2NIIX_TIMEOUT=${DCM2NIIX_TIMEOUT:-300}
export APPTAINERENV_RTPIPELINE_RADIOMICS_TASK_TIMEOUT=${RTPIPELINE_RADIOMICS_TASK_TIMEOUT:-600}

# --nv: the host's NVIDIA driver and the GPU SLURM gave this job (CUDA_VISIBLE_DEVICES).
# Re-submitting the same command resumes: finished stages are skipped (completion markers).
srun apptainer run --nv --app batch \
  --bind "$INPUT_DIR:/data/input:ro,$OUTPUT_DIR:/data/output,$LOGS_DIR:/data/logs" \
  "$SIF" \
  --dicom-root /data/input --outdir /data/output --logs /data/logs \
  --segmentation-engine totalsegmentator --totalseg-device gpu

echo "rtpipeline finished at $(date): results in $OUTPUT_DIR/_RESULTS"
