// The lane event contract. Every lane's BullMQ event stream (`<prefix>:<lane>:events`) carries
// BullMQ's native events; bullpen's processes add their own entries to the same stream with
// `bp:`-prefixed names, encoded as flat string pairs. The exporter decodes both kinds from here,
// tolerating entries it does not know and entries that are malformed. Pure: the writes are in
// publish-lane-event.ts and record-attempt.ts.
//
// The event shapes are in lane-event-types.ts, their encoding in lane-event-encoder.ts and their
// decoding in lane-event-decoder.ts; the rest of bullpen takes all three from here.
export * from './lane-event-types';
export * from './lane-event-encoder';
export * from './lane-event-decoder';
