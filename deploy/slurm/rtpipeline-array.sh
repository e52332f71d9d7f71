#!/bin/bash
# A cohort as a SLURM job array: one task per patient folder of COHORT_DIR, all writing into one
# output folder (each patient has its own <PatientID>/ folder there), then one aggregation job that
# rebuilds OUTPUT_DIR/_RESULTS from every course.
#   deploy/slurm/rtpipeline-array.sh /scratch/$USER/cohort /scratch/$USER/rtpipeline_output
# (run it directly: it submits the array and the aggregation job with sbatch.)
# MAX_PARALLEL (default 8) caps the tasks running at once.
set -euo pipefail

COHORT_DIR=$(realpath "${1:?usage: rtpipeline-array.sh COHORT_DIR OUTPUT_DIR}")
OUTPUT_DIR=$(realpath -m "${2:?usage: rtpipeline-array.sh COHORT_DIR OUTPUT_DIR}")
SIF=${RTPIPELINE_SIF:-$HOME/containers/rtpipeline.sif}
[ -f "$SIF" ] || { echo "rtpipeline.sif not found at $SIF (apptainer build rtpipeline.sif rtpipeline.def, or set RTPIPELINE_SIF)" >&2; exit 2; }
mkdir -p "$OUTPUT_DIR/Logs"

LIST="$OUTPUT_DIR/patients.txt"
find "$COHORT_DIR" -mindepth 1 -maxdepth 1 -type d | sort >"$LIST"
N=$(wc -l <"$LIST")
[ "$N" -gt 0 ] || { echo "no patient folders in $COHORT_DIR" >&2; exit 2; }

export SIF LIST OUTPUT_DIR
ARRAY_ID=$(sbatch --parsable --array="1-$N%${MAX_PARALLEL:-8}" \
  --job-name=rtpipeline-array --cpus-per-task=8 --mem=32G --time=12:00:00 --gres=gpu:1 \
  --output="$OUTPUT_DIR/Logs/array_%A_%a.out" --export=ALL <<'TASK'
#!/bin/bash
set -euo pipefail
PATIENT_DIR=$(sed -n "${SLURM_ARRAY_TASK_ID}p" "$LIST")
echo "task $SLURM_ARRAY_TASK_ID: $PATIENT_DIR"
export APPTAINERENV_TOTALSEG_TIMEOUT=${TOTALSEG_TIMEOUT:-3600}
export APPTAINERENV_DCM2NIIX_TIMEOUT=${DCM2NIIX_TIMEOUT:-300}
srun apptainer run --nv --app batch \
  --bind "$PATIENT_DIR:/data/input:ro,$OUTPUT_DIR:/data/output,$OUTPUT_DIR/Logs:/data/logs" \
  "$SIF" \
  --dicom-root /data/input --outdir /data/output --logs /data/logs \
  --segmentation-engine totalsegmentator --totalseg-device gpu
TASK
)

# After every task (failed ones too): the dvh stage is done (skipped by its marker) for every
# course, so this only rebuilds _RESULTS from all the patients' course folders.
sbatch --parsable --dependency="afterany:$ARRAY_ID" \
  --job-name=rtpipeline-results --cpus-per-task=2 --mem=8G --time=01:00:00 \
  --output="$OUTPUT_DIR/Logs/results_%j.out" --export=ALL <<'AGG'
#!/bin/bash
set -euo pipefail
srun apptainer run --app batch \
  --bind "$OUTPUT_DIR:/data/output,$OUTPUT_DIR/Logs:/data/logs" \
  "$SIF" \
  --outdir /data/output --logs /data/logs --stage dvh
AGG
echo "submitted array $ARRAY_ID ($N patients) and the results job; watch with: squeue -u $USER"
