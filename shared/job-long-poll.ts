// The contract of the jobs long poll (`GET /api/v1/hosts/<id>/jobs?wait=&known=`) that the registry
// serves and agents hold open.

/** The longest `wait` the registry holds a poll for, in seconds (agents ask for less; a proxy may cut idle requests). */
export const MAX_WAIT_SECONDS = 60;

/** Job ids an agent may list as `known`; a host with more live jobs hears of the rest by heartbeat. */
export const MAX_KNOWN_JOBS = 100;
