import { z } from 'zod';

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
    aet: aeTitle,
    host: z.string().min(1),
    port,
    tls: z.boolean().default(false),
    /** Our AE title on associations to this destination (defaults to node.aet). */
    calling_aet: aeTitle.optional(),
  })
  .strict();

export const nodeSchema = z
  .object({
    aet: aeTitle.default('RTPIPELINE'),
    dicom_port: port.default(11112),
    http_port: port.default(8080),
    /** Interfaces to listen on. A hospital node listens on the network; tests pin 127.0.0.1. */
    bind_address: z.string().min(1).default('0.0.0.0'),
    http_bind_address: z.string().min(1).default('0.0.0.0'),
    data_dir: z.string().min(1).default('./rtpipeline-data'),
    /** Calling AE titles allowed to associate; empty = anyone. */
    allowed_callers: z.array(aeTitle).default([]),
    /** Refuse associations addressed to another AE title (PACS misconfiguration shows early). */
    check_called_aet: z.boolean().default(true),
    stable_seconds: z.number().positive().default(30),
    watch: z.array(z.string().min(1)).default([]),
    destinations: z.array(destinationSchema).default([]),
    /** Routing mode: send every completed study, as received, to all destinations. */
    forward: z.boolean().default(false),
    tls: z
      .object({ key: z.string(), cert: z.string(), ca: z.string().optional(), require_client_cert: z.boolean().default(false) })
      .strict()
      .nullable()
      .default(null),
    max_associations: positiveInt.default(16),
    max_pdu_length: z.number().int().min(4096).max(4194304).default(262144),
    /** Seconds without any PDU before an association is aborted. */
    idle_timeout_seconds: z.number().positive().default(120),
    /** Seconds a new connection has to send its A-ASSOCIATE-RQ. */
    association_timeout_seconds: z.number().positive().default(30),
    /** Below this free space on the data dir, C-STORE answers Out of Resources (0xA700). */
    min_free_disk_mb: z.number().nonnegative().default(1024),
    /** Largest dataset accepted in one C-STORE: a bigger one is answered Out of Resources (0xA700);
     *  its bytes are read off the socket and dropped, never written. */
    max_instance_mb: z.number().positive().default(4096),
    /** Outbound queue: exponential backoff between these bounds; give up (dead letter) after max_age. */
    retry_initial_seconds: z.number().positive().default(5),
    retry_max_seconds: z.number().positive().default(600),
    retry_max_age_hours: z.number().positive().default(168),
    /** Concurrent pipeline jobs run by the daemon. */
    max_concurrent_jobs: positiveInt.default(1),
    /** On SIGTERM/SIGINT: how long running stages get to stop before their workers and tools are killed. */
    shutdown_grace_seconds: z.number().nonnegative().default(20),
  })
  .strict();

const segmentationSchema = z
  .object({
    engine: z.enum(['builtin', 'totalsegmentator', 'none']).default('builtin'),
    device: z.enum(['gpu', 'cpu', 'mps']).default('gpu'),
    fast: z.boolean().default(false),
    force_split: z.boolean().default(true),
    roi_subset: z.array(z.string()).nullable().default(null),
    /** Further TotalSegmentator tasks run after the main one (e.g. lung_vessels, heartchambers_highres). */
    extra_models: z.array(z.string()).default([]),
    /** TotalSegmentator command: null/local, docker, docker:IMAGE, apptainer:IMAGE.sif, or a template. */
    command: z.string().nullable().default(null),
    /** custom_model.yaml files of nnU-Net v2 models, run after the engine (any engine but none). */
    custom_models: z.array(z.string()).default([]),
    /** When a GPU run of a tool fails, run it once more on the CPU. */
    cpu_fallback: z.boolean().default(true),
    /** How the tools' input NIfTI is made: our writer, or dcm2niix from the CT files. */
    input: z.enum(['writer', 'dcm2niix']).default('writer'),
  })
  .strict();

const radiomicsSchema = z
  .object({
    enabled: z.boolean().default(true),
    params_file: z.string().nullable().default(null),
    sequential: z.boolean().default(false),
    skip_rois: z.array(z.string()).default([]),
    min_voxels: z.number().int().nonnegative().default(10),
    max_voxels: z.number().int().positive().nullable().default(null),
  })
  .strict();

const robustnessSchema = z
  .object({
    enabled: z.boolean().default(false),
    modes: z.array(z.enum(['segmentation_perturbation'])).default(['segmentation_perturbation']),
    segmentation_perturbation: z
      .object({
        apply_to_structures: z.array(z.string()).default([]),
        intensity: z.enum(['mild', 'standard', 'aggressive']).default('standard'),
        small_volume_changes: z.array(z.number()).default([-0.15, 0, 0.15]),
        large_volume_changes: z.array(z.number()).default([-0.3, 0.3]),
        max_translation_mm: z.number().nonnegative().default(4),
        n_random_contour_realizations: z.number().int().nonnegative().default(2),
        contour_randomization_mm: z.number().nonnegative().optional(),
        noise_levels: z.array(z.number()).default([0, 10, 20]),
      })
      .strict()
      .prefault({}),
    thresholds: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export const configSchema = z
  .object({
    dicom_root: z.string().nullable().default(null),
    output_dir: z.string().default('./Data_Organized'),
    logs_dir: z.string().default('./Logs'),
    max_workers: positiveInt.nullable().default(null),
    seg_workers: positiveInt.nullable().default(null),
    /** "Still processing <stage> for <patient>/<course> (<elapsed>)" every so many seconds. */
    heartbeat_seconds: z.number().positive().default(60),
    segmentation: segmentationSchema.prefault({}),
    custom_structures: z.string().nullable().default(null),
    radiomics: radiomicsSchema.prefault({}),
    radiomics_robustness: robustnessSchema.prefault({}),
    node: nodeSchema.prefault({}),
  })
  .strict();

export type Config = z.output<typeof configSchema>;
export type NodeConfig = Config['node'];
export type Destination = z.output<typeof destinationSchema>;
