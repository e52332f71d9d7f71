import { z } from 'zod';
import { routingSchemas } from '../routing/schema.js';
import { auditSchema, logPhiSchema, retentionSchema } from './hardening-schema.js';

/** The config file schema (shared/CONTRACT.md). Every object is strict: an unknown key is an error
 *  that names the key, because a misspelt key silently ignored is how a node ends up accepting
 *  stores from anyone or sending results nowhere. */

const port = z.number().int().min(1, 'a TCP port is 1..65535').max(65535, 'a TCP port is 1..65535');
const positiveInt = z.number().int().positive();

/** AE titles: 1..16 characters of the default repertoire, no backslash, not all spaces (PS3.5 §6.2). */
export const aeTitle = z
  .string()
  .max(16, 'an AE title has at most 16 characters')
  .regex(/^[\x20-\x5b\x5d-\x7e]*$/, 'an AE title uses printable ASCII without backslash')
  .refine((s) => s.trim().length > 0, 'an AE title cannot be empty or only spaces')
  .transform((s) => s.trim());

export const destinationSchema = z
  .object({
    aet: aeTitle.describe('AE title of the destination (the PACS or TPS)'),
    host: z.string().min(1).describe('Host name or IP address of the destination'),
    port: port.describe('TCP port of the destination'),
    tls: z
      .union([
        z.boolean(),
        z
          .object({
            ca: z.string().optional().describe('PEM CA bundle the destination\'s certificate must chain to (instead of the system CAs)'),
            cert: z.string().optional().describe('PEM client certificate, for a destination that requires mutual TLS'),
            key: z.string().optional().describe('PEM private key of the client certificate'),
            servername: z.string().optional().describe('Name the destination\'s certificate must carry, when it differs from host (e.g. host is an IP)'),
          })
          .strict()
          .refine((t) => !t.cert === !t.key, 'a client certificate needs both cert and key'),
      ])
      .default(false)
      .describe('DICOM TLS (1.2+) to this destination: true (system CAs plus NODE_EXTRA_CA_CERTS), or {ca, cert, key, servername} with PEM files'),
    /** Our AE title on associations to this destination (defaults to node.aet). */
    calling_aet: aeTitle.optional().describe('Our AE title on associations to this destination (default: node.aet)'),
  })
  .strict();

/** Return routing (node.routes, node.result_branding, PUT /api/routing), on the AE title and destination rules above. */
export const routingSchema = routingSchemas(aeTitle, destinationSchema);

export const nodeSchema = z
  .object({
    aet: aeTitle.default('RTPIPELINE').describe('Our AE title, as configured in the PACS (--aet, RTPIPELINE_AET)'),
    dicom_port: port.default(11112).describe('DICOM listen port (--dicom-port, RTPIPELINE_DICOM_PORT)'),
    http_port: port.default(8080).describe('HTTP port: /health, /metrics, the API (--http-port, RTPIPELINE_HTTP_PORT)'),
    /** Interfaces to listen on. A hospital node listens on the network; tests pin 127.0.0.1. */
    bind_address: z.string().min(1).default('0.0.0.0').describe('DICOM listen address (--bind, RTPIPELINE_BIND sets both addresses)'),
    http_bind_address: z.string().min(1).default('0.0.0.0').describe('HTTP listen address'),
    data_dir: z.string().min(1).default('./rtpipeline-data').describe('store/, index.sqlite, quarantine/, output/ (--data-dir, RTPIPELINE_DATA_DIR)'),
    /** Calling AE titles allowed to associate; empty = anyone. */
    allowed_callers: z.array(aeTitle).default([]).describe('Calling AE titles allowed to associate; empty = anyone (--allow-caller)'),
    /** Refuse associations addressed to another AE title (PACS misconfiguration shows early). */
    check_called_aet: z.boolean().default(true).describe('Refuse associations addressed to another AE title'),
    stable_seconds: z.number().positive().default(30).describe('A study is complete after this many seconds without a new instance (--stable-seconds)'),
    completion: z
      .object({
        min_quiet_seconds: z.number().nonnegative().default(2).describe('No study is declared complete (but by storage commitment) sooner than this after its last instance; capped by stable_seconds'),
        max_quiet_seconds: z.number().positive().default(300).describe('Longest wait for an incomplete series (a CT slice gap, a count hint not reached); at least stable_seconds'),
        adaptive: z.boolean().default(true).describe('Learn each calling AE\'s quiet time from its inter-arrival gaps; off = stable_seconds for everyone'),
        gap_factor: z.number().positive().default(4).describe('Adaptive quiet time = gap_factor x the 95th percentile of the sender\'s gaps, within min/max_quiet_seconds'),
        require_geometry: z.boolean().default(true).describe('A CT series with a gap in its slice positions (or a count hint not reached) holds its study until max_quiet_seconds'),
        storage_commitment: z.boolean().default(true).describe('Accept Storage Commitment (N-ACTION); a study whose instances are all committed is complete at once'),
      })
      .strict()
      .prefault({})
      .describe('Study completion from evidence: association release, adaptive quiet time, CT slice geometry, count hints, storage commitment'),
    watch: z.array(z.string().min(1)).default([]).describe('Folders watched for DICOM files (--watch)'),
    destinations: z.array(destinationSchema).default([]).describe('Where results (RS_auto.dcm) are sent (--destination AE@HOST:PORT)'),
    /** Routing mode: send every completed study, as received, to all destinations. */
    forward: z.boolean().default(false).describe('Routing mode: send every completed study, as received, to all destinations'),
    /** Return routing: first match wins; a study no route matches goes to node.destinations. */
    routes: routingSchema.routes.default([]).describe('Return routing rules, first match wins: match the sender (calling_aet, called_aet, peer), return_to, constraints, dry_run, branding. <data_dir>/routing.json (PUT /api/routing) overrides them'),
    result_branding: routingSchema.branding.nullable().default(null).describe('Default result branding of RS_auto (structure_set_label, structure_set_name, series_description, roi_name_prefix); null = none'),
    tls: z
      .object({
        key: z.string().describe('PEM private key file of the listener'),
        cert: z.string().describe('PEM certificate file of the listener'),
        ca: z.string().optional().describe('PEM CA bundle that client certificates must chain to'),
        require_client_cert: z.boolean().default(false).describe('Refuse callers without a valid client certificate'),
        port: port.default(2762).describe('DICOM TLS listen port (--tls-port, RTPIPELINE_TLS_PORT)'),
        plain: z.boolean().default(true).describe('Keep the plain (non-TLS) listener on dicom_port running; false = TLS only'),
        min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Lowest TLS version accepted (never below TLS 1.2)'),
        ciphers: z.string().min(1).nullable().default(null).describe("OpenSSL cipher list for TLS 1.2 (e.g. 'ECDHE+AESGCM'); null = Node's default"),
        /** Certificate subject CN -> the calling AE titles that certificate may use. */
        client_aets: z
          .record(z.string().min(1), z.array(aeTitle))
          .default({})
          .describe('Client certificate subject CN -> calling AE titles it may use; a TLS caller using another AE is rejected. Empty = no mapping'),
      })
      .strict()
      // Without a CA, client certificates would be checked against the public roots: anyone with a web certificate.
      .refine((t) => t.ca !== undefined || (!t.require_client_cert && Object.keys(t.client_aets).length === 0), {
        message: 'require_client_cert and client_aets need node.tls.ca (the CA that issues your client certificates)',
        path: ['ca'],
      })
      .nullable()
      .default(null).describe('DICOM TLS listener (beside the plain one unless plain: false): key and cert files, optional CA, client certificates mapped to AE titles; null = no TLS listener'),
    max_associations_per_peer: positiveInt.default(8).describe('Concurrent associations from one remote IP address; more get A-ASSOCIATE-RJ "local limit exceeded"'),
    max_study_mb: z.number().nonnegative().default(0).describe('Largest study stored, in MB (sum of its instances); a C-STORE over it is answered Out of Resources (0xA700). 0 = unlimited'),
    max_associations: positiveInt.default(16).describe('Concurrent associations; more get A-ASSOCIATE-RJ "local limit exceeded"'),
    max_pdu_length: z.number().int().min(4096).max(4194304).default(262144).describe('Largest P-DATA PDU accepted, in bytes (announced to peers)'),
    /** Seconds without any PDU before an association is aborted. */
    idle_timeout_seconds: z.number().positive().default(120).describe('Seconds without any PDU before an association is aborted'),
    /** Seconds a new connection has to send its A-ASSOCIATE-RQ. */
    association_timeout_seconds: z.number().positive().default(30).describe('Seconds a new connection has to send its A-ASSOCIATE-RQ'),
    /** Below this free space on the data dir, C-STORE answers Out of Resources (0xA700). */
    min_free_disk_mb: z.number().nonnegative().default(1024).describe('Below this free space on the data dir, C-STORE answers Out of Resources (0xA700)'),
    /** Largest dataset accepted in one C-STORE: a bigger one is answered Out of Resources (0xA700);
     *  its bytes are read off the socket and dropped, never written. */
    max_instance_mb: z.number().positive().default(4096).describe('Largest dataset accepted in one C-STORE'),
    /** Outbound queue: exponential backoff between these bounds; give up (dead letter) after max_age. */
    retry_initial_seconds: z.number().positive().default(5).describe('Outbound queue: first retry delay (doubles, with jitter)'),
    retry_max_seconds: z.number().positive().default(600).describe('Outbound queue: longest retry delay'),
    retry_max_age_hours: z.number().positive().default(168).describe('Outbound queue: after this an item is a dead letter (visible in /api/outbound)'),
    /** Per destination: after `failures` consecutive association failures no attempt is made for
     *  `open_seconds`, then one trial decides (success closes it, failure opens it again). */
    circuit_breaker: z
      .object({
        failures: positiveInt.default(5).describe('Consecutive association failures that open a destination\'s circuit (no attempts while open)'),
        open_seconds: z.number().positive().default(60).describe('How long an open circuit stays open before one trial association (half-open)'),
      })
      .strict()
      .prefault({})
      .describe('Outbound circuit breaker, per destination'),
    /** Concurrent pipeline jobs run by the daemon. */
    max_concurrent_jobs: positiveInt.default(1).describe('Concurrent study jobs run by the node'),
    /** On SIGTERM/SIGINT: how long running stages get to stop before their workers and tools are killed. */
    shutdown_grace_seconds: z.number().nonnegative().default(20).describe('On SIGTERM/SIGINT: how long running stages get before their workers and tools are killed'),
    audit: auditSchema.prefault({}).describe('The audit trail: file, syslog forwarding, patient id masking'),
    retention: retentionSchema.prefault({}).describe('Purge of finished studies (store and outputs) by age or disk budget'),
    max_upload_mb: positiveInt.default(2048).describe('Largest web upload (POST /api/upload), archives expanded included; over it: HTTP 413'),
    max_upload_files: positiveInt.default(10000).describe('Most files in one web upload, archive entries included; over it: HTTP 413'),
  })
  .strict();

const segmentationSchema = z
  .object({
    engine: z.enum(['builtin', 'totalsegmentator', 'none']).default('builtin').describe('Segmentation engine (--segmentation-engine)'),
    device: z.enum(['gpu', 'cpu', 'mps']).default('gpu').describe('TotalSegmentator device; gpu falls back to cpu when nvidia-smi finds no GPU (--totalseg-device)'),
    fast: z.boolean().default(false).describe('TotalSegmentator --fast (--totalseg-fast)'),
    force_split: z.boolean().default(true).describe('TotalSegmentator --force_split (--no-totalseg-force-split turns it off)'),
    roi_subset: z.array(z.string()).nullable().default(null).describe('TotalSegmentator --roi_subset, e.g. [lung_upper_lobe_left, heart] (--totalseg-roi-subset)'),
    /** Further TotalSegmentator tasks run after the main one (e.g. lung_vessels, heartchambers_highres). */
    extra_models: z.array(z.string()).default([]).describe('Further TotalSegmentator tasks run after the main one, e.g. [lung_vessels]'),
    /** TotalSegmentator command: null/local, docker, docker:IMAGE, apptainer:IMAGE.sif, or a template. */
    command: z.string().nullable().default(null).describe('How TotalSegmentator runs: null (on PATH), docker, docker:IMAGE, apptainer:IMAGE.sif, or a template with {input} {output} {args}'),
    /** custom_model.yaml files of nnU-Net v2 models, run after the engine (any engine but none). */
    custom_models: z.array(z.string()).default([]).describe('custom_model.yaml files of nnU-Net v2 models, run after the engine'),
    /** When a GPU run of a tool fails, run it once more on the CPU. */
    cpu_fallback: z.boolean().default(true).describe('When a GPU run of a tool fails, run it once more on the CPU'),
    /** How the tools' input NIfTI is made: our writer, or dcm2niix from the CT files. */
    input: z.enum(['writer', 'dcm2niix']).default('writer').describe('How the tools\' input NIfTI is made: our writer, or dcm2niix from the CT files'),
  })
  .strict();

const radiomicsSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Run the radiomics stage'),
    params_file: z.string().nullable().default(null).describe('pyradiomics-style parameter file (--radiomics-params)'),
    sequential: z.boolean().default(false).describe('One ROI at a time (--sequential-radiomics)'),
    skip_rois: z.array(z.string()).default([]).describe('ROI names left out of radiomics'),
    min_voxels: z.number().int().nonnegative().default(10).describe('ROIs with fewer voxels are skipped'),
    max_voxels: z.number().int().positive().nullable().default(null).describe('ROIs with more voxels are skipped; null = no limit'),
  })
  .strict();

const robustnessSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Run the radiomics robustness stage'),
    modes: z.array(z.enum(['segmentation_perturbation'])).default(['segmentation_perturbation']).describe('Perturbation modes'),
    segmentation_perturbation: z
      .object({
        apply_to_structures: z.array(z.string()).default([]).describe('ROI names (or patterns) to perturb; empty = all'),
        intensity: z.enum(['mild', 'standard', 'aggressive']).default('standard').describe('Preset strength of the perturbations'),
        small_volume_changes: z.array(z.number()).default([-0.15, 0, 0.15]).describe('Relative volume changes for small ROIs'),
        large_volume_changes: z.array(z.number()).default([-0.3, 0.3]).describe('Relative volume changes for large ROIs'),
        max_translation_mm: z.number().nonnegative().default(4).describe('Largest rigid translation of an ROI, in mm'),
        n_random_contour_realizations: z.number().int().nonnegative().default(2).describe('Random contour realizations per ROI'),
        contour_randomization_mm: z.number().nonnegative().optional().describe('Amplitude of the random contour changes, in mm'),
        noise_levels: z.array(z.number()).default([0, 10, 20]).describe('Image noise levels, in HU'),
      })
      .strict()
      .prefault({}).describe('Segmentation perturbation settings'),
    thresholds: z.record(z.string(), z.unknown()).default({}).describe('ICC/CoV thresholds for the robustness labels'),
  })
  .strict();

/** Where the batch command runs the course stages (`rtpipeline run --executor ...`). */
export const executorSchema = z
  .object({
    kind: z.enum(['local', 'slurm']).default('local').describe('local: worker threads of this process; slurm: one sbatch array task per course (--executor)'),
    partition: z.string().min(1).nullable().default(null).describe('SLURM partition; null = the cluster default (--partition)'),
    account: z.string().min(1).nullable().default(null).describe('SLURM account (--account)'),
    gpus_per_task: z.number().int().nonnegative().default(0).describe('GPUs per course task (--gpus-per-task)'),
    time: z
      .string()
      .regex(/^(\d+-)?\d{1,3}(:\d{2}){0,2}$/, 'a SLURM time limit such as 02:00:00 or 1-00:00:00')
      .nullable()
      .default(null)
      .describe('Time limit per course task, HH:MM:SS; null = the partition default (--time)'),
    container: z.string().min(1).nullable().default(null).describe('Apptainer image with rtpipeline on PATH, run with apptainer exec on the compute nodes (--container)'),
    max_retries: z.number().int().nonnegative().default(2).describe('Resubmissions of a course task that ended without a result (node failure, time limit, killed)'),
    poll_seconds: z.number().positive().default(5).describe('Interval of the squeue polls'),
  })
  .strict();

export const configSchema = z
  .object({
    dicom_root: z.string().nullable().default(null).describe('Batch: the folder tree of DICOM files (--dicom-root)'),
    output_dir: z.string().default('./Data_Organized').describe('Batch: output folder (--outdir)'),
    logs_dir: z.string().default('./Logs').describe('Batch: log folder (--logs)'),
    max_workers: positiveInt.nullable().default(null).describe('Stages run at once; null = usable CPUs - 1, cgroup- and affinity-aware (--max-workers, RTPIPELINE_MAX_WORKERS)'),
    seg_workers: positiveInt.nullable().default(null).describe('Segmentation stages run at once; null = 1 (--seg-workers)'),
    /** "Still processing <stage> for <patient>/<course> (<elapsed>)" every so many seconds. */
    heartbeat_seconds: z.number().positive().default(60).describe('Interval of the "Still processing ..." log line'),
    segmentation: segmentationSchema.prefault({}).describe('Auto-segmentation'),
    custom_structures: z.string().nullable().default(null).describe('YAML of boolean structures written to RS_custom.dcm (--custom-structures)'),
    radiomics: radiomicsSchema.prefault({}).describe('Radiomics'),
    radiomics_robustness: robustnessSchema.prefault({}).describe('Radiomics robustness'),
    node: nodeSchema.prefault({}).describe('The DICOM node (rtpipeline serve)'),
    executor: executorSchema.prefault({}).describe('Batch: where the course stages run'),
    log_phi: logPhiSchema,
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type NodeConfig = Config['node'];
export type Destination = z.output<typeof destinationSchema>;
