//! Delta anti-entropy: what one peer lacks, cut into datagram-sized deltas, and how a
//! received delta is merged and accounted for.
//!
//! Peers compare digests (each origin's contiguous prefix). The side that holds more
//! streams, per origin, the ranges the other lacks; [`PeerSync`] keeps that stream and
//! when the next sync with the peer is due. A [`Group`] says "these are *all* the
//! entries I hold of origin O with seq in lo..=hi", so after merging it the receiver may
//! account for the whole range: an entry absent from the group was superseded, and its
//! superseder travels in its own origin's range. Only a group merged whole is credited
//! as a range, and only up to what the origin itself vouched for (see `frontier`);
//! otherwise just the entries merged are, and a refused entry stays open for the next
//! round.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::compress::{self, Codec, PACKED_CHUNK};
use crate::config::Config;
use crate::event::{ChangeOrigin, Event};
use crate::frontier::Frontiers;
use crate::hlc::HlcClock;
use crate::propagation::PropagationLag;
use crate::replica::{Entry, MergeOutcome, Replica};
use crate::resend::{WriteKind, WritesInFlight};
use crate::status::Counters;
use crate::transport::Channel;
use crate::version::{fingerprint_of, OriginId, VersionVector};
use crate::wire::{self, Delta, Group, Message, Want, WireEntry};

/// `(origin, lo, hi)`: the writes of one origin with sequence numbers in `lo..=hi`.
pub(crate) type SeqRange = (OriginId, u64, u64);

/// Shortest pause between two syncs with one peer started by triggers (lost data,
/// differing fingerprint); the periodic round is not limited by it.
pub(crate) const MIN_TRIGGERED_SYNC_GAP_US: u64 = 200_000;

/// Sync requests taken from one peer per [`REQUEST_WINDOW_US`]; more are refused. Each
/// restarts a stream of everything the peer lacks, so a peer may not ask without end. A
/// well-behaved peer asks a few times a second at most (its own rounds and triggers, and
/// its answers to this node's requests).
pub(crate) const MAX_REQUESTS_PER_WINDOW: u32 = 16;
/// The window of [`MAX_REQUESTS_PER_WINDOW`], microseconds.
pub(crate) const REQUEST_WINDOW_US: u64 = 1_000_000;

/// Upper bound of a postcard-encoded `Message::Delta` before its groups: the message
/// tag and the group count.
const DELTA_ENVELOPE_BYTES: usize = 8;
/// Upper bound of a group's own fields: origin, lo and hi as varints of up to 10 bytes
/// each, and the entry count.
const GROUP_FIELDS_BYTES: usize = 32;

/// A peer's digest as last received: origin to contiguous sequence number.
pub(crate) type PeerDigest = HashMap<OriginId, u64>;

/// What a peer accounts for, from its digests (see [`PeerSync::view`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerView<'a> {
    digest: &'a PeerDigest,
    departed: Option<&'a PeerDigest>,
}

impl<'a> PeerView<'a> {
    /// A view of one digest alone.
    #[cfg(test)]
    pub fn of(digest: &'a PeerDigest) -> PeerView<'a> {
        PeerView {
            digest,
            departed: None,
        }
    }

    /// The prefix of `origin` the peer reports in its digest.
    pub fn reported(&self, origin: OriginId) -> Option<u64> {
        self.digest.get(&origin).copied()
    }

    /// Every origin the peer's last digest reports, with its prefix.
    pub fn reported_all(&self) -> impl Iterator<Item = (OriginId, u64)> + '_ {
        self.digest.iter().map(|(&origin, &upto)| (origin, upto))
    }

    /// The prefix of `origin` the peer accounts for: reported in its last digest, or in
    /// an earlier one before it retired the origin.
    pub fn accounts(&self, origin: OriginId) -> Option<u64> {
        self.reported(origin)
            .or_else(|| self.departed.and_then(|d| d.get(&origin).copied()))
    }
}

/// Anti-entropy state with one peer incarnation.
#[derive(Debug, Default)]
pub(crate) struct PeerSync {
    /// Its latest version-vector fingerprint (from heartbeats).
    pub fingerprint: Option<u64>,
    /// Its latest digest (from sync requests).
    pub digest: Option<PeerDigest>,
    /// Origins its digests named before and no longer do (it retired them), with the
    /// highest prefix it reported. It accounted for those writes when it said so, and
    /// a retired origin stays accounted for, so the word still stands.
    departed: PeerDigest,
    /// Ranges still to stream to it.
    pub stream: VecDeque<SeqRange>,
    /// Per origin, a range streamed to it since its channel was last idle: on its way,
    /// so a new request does not stream it again. (One range per origin: forgetting one
    /// only costs sending it twice.)
    sent: HashMap<OriginId, (u64, u64)>,
    /// A sync with it is wanted at this time.
    pub due_us: Option<u64>,
    /// Last sync round started with it.
    pub last_us: Option<u64>,
    /// A periodic round asked it for its fingerprint, and no heartbeat came since: the
    /// next one answers for the round (see [`PeerSync::question`]).
    questioned: bool,
    /// When it last came back (restarted, or heard from after being held failed):
    /// writes pushed meanwhile may have missed it.
    back_us: Option<u64>,
    /// What this node last asked the peer to stream to it.
    pub asked: Asked,
    /// The number of the last request sent to the peer in this session.
    requests_sent: u64,
    /// The number of the latest request taken from the peer in this session.
    latest_taken: u64,
    /// Start of the current request window and the requests taken in it.
    requests: (u64, u32),
}

/// What a sync request asked the peer to stream (see [`Want`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Asked {
    /// Everything this node lacks.
    #[default]
    All,
    /// What lies above another peer's stream.
    Above,
    /// Nothing until another peer's answer was in.
    Nothing,
}

impl Asked {
    /// What `want` asks for.
    pub fn of(want: &Want) -> Asked {
        match want {
            Want::All => Asked::All,
            Want::Above(_) => Asked::Above,
            Want::Nothing => Asked::Nothing,
        }
    }
}

impl PeerSync {
    /// Forgets what was known of the peer's previous incarnation. When the last sync was
    /// and whether one is due stay: they pace this node, not the peer.
    pub fn reset_session(&mut self) {
        self.fingerprint = None;
        self.digest = None;
        self.departed.clear();
        self.stream.clear();
        self.sent.clear();
        self.asked = Asked::All;
        self.requests_sent = 0;
        self.latest_taken = 0;
    }

    /// The number of the next request to the peer.
    pub fn next_request_number(&mut self) -> u64 {
        self.requests_sent += 1;
        self.requests_sent
    }

    /// Whether a request numbered `number` is later than every one taken so far; if so
    /// it is the latest.
    pub fn take_if_latest(&mut self, number: u64) -> bool {
        let latest = number > self.latest_taken;
        if latest {
            self.latest_taken = number;
        }
        latest
    }

    /// A sync is wanted at once (a new session, a recovery, a new identity).
    pub fn want_now(&mut self, now_us: u64) {
        self.due_us = Some(now_us);
    }

    /// The peer came back at `now_us` (restarted, or heard from after being held
    /// failed): a sync is wanted at once, and writes pushed while it was away are not
    /// left out of streams to it for a while (see [`PeerSync::back_since`]).
    pub fn on_back(&mut self, now_us: u64) {
        self.want_now(now_us);
        self.back_us = Some(now_us);
    }

    /// Whether the peer came back at `since_us` or later.
    pub fn back_since(&self, since_us: u64) -> bool {
        self.back_us.is_some_and(|back| back >= since_us)
    }

    /// A sync is wanted, as soon as the pacing allows, because data to the peer was
    /// given up by the transport.
    pub fn on_lost_data(&mut self, now_us: u64) {
        // What was streamed may be what was lost.
        self.sent.clear();
        let earliest = self
            .last_us
            .map_or(now_us, |s| s + MIN_TRIGGERED_SYNC_GAP_US);
        self.due_us.get_or_insert(earliest.max(now_us));
    }

    /// A sync due before `until` waits until then.
    pub fn postpone(&mut self, until: u64) {
        if let Some(due) = self.due_us.as_mut() {
            *due = (*due).max(until);
        }
    }

    /// A sync is wanted whenever the next round comes (its send queue was full).
    pub fn want_eventually(&mut self) {
        self.due_us.get_or_insert(0);
    }

    /// A periodic round asked the peer for its fingerprint (a heartbeat that asks for an
    /// answer): the next fingerprint heard from it, if it differs, calls for a sync.
    pub fn question(&mut self) {
        self.questioned = true;
    }

    /// Takes the peer's fingerprint from a heartbeat. Differing fingerprints are expected
    /// while pushes are still on their way: only a difference seen with nothing in
    /// flight (`channel_idle`) calls for a sync, paced by `min_gap_us`. One that answers
    /// a periodic round's question calls for it at once, whatever is in flight, as the
    /// round would have: under steady traffic both ways no channel is ever idle, and
    /// the round is what repairs a write lost for good there.
    pub fn on_fingerprint(
        &mut self,
        theirs: u64,
        ours: u64,
        channel_idle: bool,
        min_gap_us: u64,
        now_us: u64,
    ) {
        self.fingerprint = Some(theirs);
        let questioned = std::mem::take(&mut self.questioned);
        if theirs == ours || self.due_us.is_some() {
            return;
        }
        if questioned {
            self.due_us = Some(now_us);
        } else if channel_idle {
            let earliest = self.last_us.map_or(now_us, |s| s + min_gap_us);
            self.due_us = Some(earliest.max(now_us));
        }
    }

    /// Whether the peer's latest fingerprint is `ours`: it then held everything this node
    /// holds, and a periodic round with it would exchange two digests for nothing.
    pub fn in_step(&self, ours: u64) -> bool {
        self.fingerprint == Some(ours)
    }

    /// Whether a sync is due at `now_us`; if so it is no longer pending.
    pub fn take_due(&mut self, now_us: u64) -> bool {
        let due = self.due_us.is_some_and(|d| d <= now_us);
        if due {
            self.due_us = None;
        }
        due
    }

    /// Whether a sync request from the peer at `now_us` may be served (see
    /// [`MAX_REQUESTS_PER_WINDOW`]).
    pub fn admit_request(&mut self, now_us: u64) -> bool {
        let (start, count) = &mut self.requests;
        if now_us.saturating_sub(*start) >= REQUEST_WINDOW_US {
            (*start, *count) = (now_us, 0);
        }
        *count += 1;
        *count <= MAX_REQUESTS_PER_WINDOW
    }

    /// Takes a sync request: remembers the peer's digest and streams it what it lacks,
    /// as much of it as it wants and `settled` lets through (see `recent`). A new
    /// request replaces the stream of the last one, less what that one streamed or a
    /// push carried and the channel still delivers (`channel_idle` unset): a peer
    /// asking mid-stream or mid-push is not sent the same writes twice.
    pub fn on_request(
        &mut self,
        digest: PeerDigest,
        want: Want,
        ours: &VersionVector,
        channel_idle: bool,
        settled: impl Fn(SeqRange) -> Option<SeqRange>,
    ) {
        if channel_idle {
            self.sent.clear();
        }
        self.stream = match want {
            Want::Nothing => VecDeque::new(),
            Want::All | Want::Above(_) => {
                let mut above = digest.clone();
                if let Want::Above(floors) = want {
                    for (origin, floor) in floors {
                        let upto = above.entry(origin).or_insert(0);
                        *upto = (*upto).max(floor);
                    }
                }
                missing_ranges(ours, &above)
                    .into_iter()
                    .filter_map(settled)
                    .flat_map(|range| without_sent(range, self.sent.get(&range.0).copied()))
                    .collect()
            }
        };
        // The digest stays the peer's own word: tombstones are collected on it.
        self.remember_digest(digest, ours);
    }

    /// Keeps `digest` as the peer's latest word, with the origins it stopped naming.
    fn remember_digest(&mut self, digest: PeerDigest, ours: &VersionVector) {
        // A digest is the freshest fingerprint there is.
        self.fingerprint = Some(fingerprint_of(digest.iter().map(|(&o, &upto)| (o, upto))));
        if let Some(previous) = self.digest.take() {
            for (origin, upto) in previous {
                if !digest.contains_key(&origin) {
                    let kept = self.departed.entry(origin).or_default();
                    *kept = (*kept).max(upto);
                }
            }
        }
        // Only origins this node still holds need the peer's word: the rest are retired
        // here too, or were never heard of.
        self.departed
            .retain(|origin, _| !digest.contains_key(origin) && ours.holds(*origin));
        self.digest = Some(digest);
    }

    /// What the peer last said it accounts for, once it sent a digest: per origin, the
    /// prefix it reports, or for an origin it retired, the prefix it reported last.
    pub fn view(&self) -> Option<PeerView<'_>> {
        self.digest.as_ref().map(|digest| PeerView {
            digest,
            departed: Some(&self.departed),
        })
    }

    /// [`PeerSync::view`], except that a peer in step with this node (`own`: this node's
    /// fingerprint and digest) accounts for at least this node's digest, which may be
    /// newer than the last one it sent: converged peers exchange no digests.
    pub fn view_in_step<'a>(&'a self, own: &'a (u64, PeerDigest)) -> Option<PeerView<'a>> {
        if self.in_step(own.0) {
            return Some(PeerView {
                digest: &own.1,
                departed: Some(&self.departed),
            });
        }
        self.view()
    }

    /// Whether writes sent to the peer carry the collected deletes this node remembers:
    /// only once it said it accounts for something, so it may hold a value one of them
    /// superseded (see `collected`). A node joining afresh is sent none.
    pub fn sends_collected(&self) -> bool {
        self.digest.as_ref().is_some_and(|digest| !digest.is_empty())
    }

    /// Moves the stream into `channel` one delta at a time, while the channel's queue is
    /// below `refill_below` bytes: the transport's window is the flow control, and memory
    /// stays bounded whatever the state size. A delta is one datagram's worth (`budget`),
    /// or, with `codec` (the peer reads compressed payloads), a chunk packed whole.
    pub fn refill(
        &mut self,
        replica: &Replica,
        (channel, writes): (&mut Channel, &mut WritesInFlight),
        (budget, refill_below): (usize, usize),
        mut codec: Option<&mut Codec>,
    ) {
        let chunk = if codec.is_some() { PACKED_CHUNK.max(budget) } else { budget };
        let collected = self.sends_collected();
        while !self.stream.is_empty() && channel.queued_bytes() < refill_below {
            let delta = build_delta(replica, &mut self.stream, chunk, collected);
            let covered = covered_held(&delta, replica, collected);
            let message = wire::encode_message(&Message::Delta(delta));
            let id = channel.next_message_id();
            if !channel.send_message(&compress::pack_for(codec.as_deref_mut(), message, budget)) {
                break;
            }
            for &(range, _) in &covered {
                self.note_sent(range);
            }
            // A stream's message is a delta like a push's: one superseded before its
            // retransmission is sent again as its ranges are then (see `resend`).
            writes.record(id, WriteKind::Delta, covered);
        }
    }

    /// Notes that `range` is on its way to the peer (streamed or pushed).
    pub fn note_sent(&mut self, (origin, lo, hi): SeqRange) {
        let sent = self.sent.entry(origin).or_insert((lo, hi));
        *sent = if lo <= sent.1.saturating_add(1) && hi.saturating_add(1) >= sent.0 {
            (sent.0.min(lo), sent.1.max(hi))
        } else {
            (lo, hi)
        };
    }
}

/// `range` less the part of it in `sent`: up to two ranges.
fn without_sent(range: SeqRange, sent: Option<(u64, u64)>) -> Vec<SeqRange> {
    let (origin, lo, hi) = range;
    let Some((slo, shi)) = sent.filter(|&(slo, shi)| slo <= hi && shi >= lo) else {
        return vec![range];
    };
    let mut left = Vec::new();
    if lo < slo {
        left.push((origin, lo, slo - 1));
    }
    if shi < hi {
        left.push((origin, shi + 1, hi));
    }
    left
}

/// Per origin, the ranges `ours` accounts for above the peer's contiguous prefix, in
/// origin order.
pub(crate) fn missing_ranges(ours: &VersionVector, theirs: &PeerDigest) -> VecDeque<SeqRange> {
    let mut ranges = VecDeque::new();
    for (origin, set) in ours.iter() {
        let their_upto = theirs.get(&origin).copied().unwrap_or(0);
        for (lo, hi) in set.ranges() {
            if hi > their_upto {
                ranges.push_back((origin, lo.max(their_upto + 1), hi));
            }
        }
    }
    // Sorted for determinism: the vector iterates in hash order.
    ranges.make_contiguous().sort_unstable();
    ranges
}

/// An encoded delta, and what it covers.
pub(crate) struct EncodedDelta {
    /// The encoded message of writes, packed or not: a [`Message::Delta`], or a
    /// [`Message::Gossip`] on the broadcast tree.
    pub bytes: Vec<u8>,
    /// The ranges of its groups, each with how many entries it carries (see `resend`).
    pub covered: Vec<(SeqRange, usize)>,
}

/// The ranges of `delta`'s groups, each with how many entries it carries.
pub(crate) fn covered_by(delta: &Delta) -> Vec<(SeqRange, usize)> {
    delta
        .groups
        .iter()
        .map(|g| ((g.origin, g.lo, g.hi), g.entries.len()))
        .collect()
}

/// [`covered_by`] for a delta built with `collected` (see [`build_delta`]): the entries
/// held, without the collected deletes it carries, which no superseding write removes.
fn covered_held(delta: &Delta, replica: &Replica, collected: bool) -> Vec<(SeqRange, usize)> {
    if !collected {
        return covered_by(delta);
    }
    delta
        .groups
        .iter()
        .map(|g| ((g.origin, g.lo, g.hi), replica.held_in(g.origin, g.lo, g.hi)))
        .collect()
}

/// The encoded deltas carrying every write of `ranges`, each about `budget` bytes, and
/// with `collected` the collected deletes in them (see [`build_delta`]).
pub(crate) fn encoded_deltas(
    replica: &Replica,
    mut ranges: VecDeque<SeqRange>,
    budget: usize,
    collected: bool,
) -> Vec<EncodedDelta> {
    let mut messages = Vec::new();
    while !ranges.is_empty() {
        let delta = build_delta(replica, &mut ranges, budget, collected);
        let covered = covered_held(&delta, replica, collected);
        messages.push(EncodedDelta {
            bytes: wire::encode_message(&Message::Delta(delta)),
            covered,
        });
    }
    messages
}

/// [`encoded_deltas`] for a peer that reads compressed payloads: chunks of about
/// [`PACKED_CHUNK`] bytes, each packed whole where that wins (see `compress`).
pub(crate) fn packed_deltas(
    replica: &Replica,
    ranges: VecDeque<SeqRange>,
    budget: usize,
    codec: &mut Codec,
    collected: bool,
) -> Vec<EncodedDelta> {
    encoded_deltas(replica, ranges, PACKED_CHUNK.max(budget), collected)
        .into_iter()
        .map(|message| EncodedDelta {
            bytes: codec.pack(message.bytes, budget),
            ..message
        })
        .collect()
}

/// Builds one delta of at most about `budget` bytes from the front of `ranges`,
/// consuming what it covers. Always makes progress: a single entry larger than the
/// budget travels alone (fragmented by the transport). With `collected`, the collected
/// deletes still remembered travel as the tombstones they were (see `collected`).
pub(crate) fn build_delta(
    replica: &Replica,
    ranges: &mut VecDeque<SeqRange>,
    budget: usize,
    collected: bool,
) -> Delta {
    let mut delta = Delta::default();
    let mut size = DELTA_ENVELOPE_BYTES;
    let mut any_entry = false;
    while let Some(&(origin, lo, hi)) = ranges.front() {
        let mut entries: Vec<WireEntry> = Vec::new();
        let mut covered_to = hi;
        for (key, entry) in replica.entries_to_send(origin, lo, hi, collected) {
            let wire_entry = WireEntry {
                seq: entry.seq,
                hlc: entry.hlc,
                key: Arc::clone(key),
                value: entry.value.clone(),
                expires: entry.expires,
            };
            // The exact size, not a bound: a bound ran a fifth over for short writes, and
            // the messages (one datagram each) went out a fifth emptier.
            let previous = entries.last().map_or((0, 0), |e| (e.seq, e.hlc));
            let len = wire::entries::encoded_len(&wire_entry, previous)
                .unwrap_or_else(|| wire_entry.encoded_len());
            if any_entry && size + GROUP_FIELDS_BYTES + len > budget {
                // The group ends just before this entry; the range resumes with it.
                covered_to = entry.seq - 1;
                break;
            }
            size += len;
            any_entry = true;
            entries.push(wire_entry);
        }
        size += GROUP_FIELDS_BYTES;
        if covered_to >= lo {
            delta.groups.push(Group {
                origin,
                lo,
                hi: covered_to,
                entries,
            });
        }
        if covered_to == hi {
            ranges.pop_front();
        } else {
            if let Some(front) = ranges.front_mut() {
                front.1 = covered_to + 1;
            }
            break;
        }
        if size >= budget {
            break;
        }
    }
    delta
}

/// What a received delta is checked against.
pub(crate) struct MergeRules<'a> {
    /// Size limits of keys and values.
    pub config: &'a Config,
    /// How far each origin vouched its writes go.
    pub frontiers: &'a Frontiers,
    /// This node's wall clock, for the drift check.
    pub wall_ms: u64,
    /// Whether an origin is the incarnation of a current member: such an origin is
    /// taken even past `max_origins` (the member table has its own bound), so a flood
    /// of forged origins relayed by honest nodes never shuts out a member's writes.
    pub is_member: &'a dyn Fn(OriginId) -> bool,
}

/// Whether `group` is refused because it would add an origin past `max_origins`.
fn past_origin_cap(group: &Group, replica: &Replica, rules: &MergeRules<'_>) -> bool {
    let vv = replica.version_vector();
    // An entry carried beyond the range is accounted for too.
    let top = group.entries.iter().map(|e| e.seq).fold(group.hi, u64::max);
    vv.len() >= rules.config.max_origins
        && vv.would_add(group.origin, top)
        && !(rules.is_member)(group.origin)
}

/// The deletes held here that beat an entry received: the sender held a value they
/// superseded (see `Engine::claimed_by` for who is sent them).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct DeletesThatWon {
    /// Held here all along.
    pub held: Vec<SeqRange>,
    /// Collected here, and held again: other nodes may hold the value too.
    pub revived: Vec<SeqRange>,
}

impl DeletesThatWon {
    fn sorted(mut self) -> DeletesThatWon {
        for list in [&mut self.held, &mut self.revived] {
            list.sort_unstable();
            list.dedup();
        }
        self
    }
}

/// Merges a received delta into `replica`, counting in `counters` and, when `events` is
/// given, reporting each change of a key there. Every write applied has its propagation
/// lag recorded in `lag`. A group's range is credited to the version vector only if
/// every entry in it was merged (or already accounted for), and only up to its origin's
/// frontier; otherwise the entries merged are, one by one. Returns the deletes held
/// here that beat an entry received.
pub(crate) fn merge_delta(
    delta: Delta,
    replica: &mut Replica,
    clock: &mut HlcClock,
    rules: &MergeRules<'_>,
    counters: &mut Counters,
    lag: &mut PropagationLag,
    mut events: Option<&mut VecDeque<Event>>,
) -> DeletesThatWon {
    let mut won = DeletesThatWon::default();
    let MergeRules {
        config,
        frontiers,
        wall_ms,
        ..
    } = *rules;
    let own = replica.own_origin();
    for group in delta.groups {
        if group.origin == own {
            continue; // our own writes: we hold them, or we are a later incarnation
        }
        if past_origin_cap(&group, replica, rules) {
            // Nothing of it is taken, so nothing of it is accounted for: if the origin
            // is real, its writes are offered again once origins retire.
            counters.dropped.origins += 1;
            continue;
        }
        // The lowest sequence number refused: the range is whole only below it.
        let mut first_refused = u64::MAX;
        // Entries merged (or beaten by what is held): accounted for one by one where the
        // range as a whole cannot be.
        let mut merged_seqs = Vec::new();
        for entry in group.entries {
            counters.entries_received += 1;
            // Already accounted for: held, beaten by what is held, or a delete whose
            // tombstone is collected. A late retransmission of an old write must not
            // bring back a value deleted since. A delete that beats what is held is
            // taken all the same: this node accounted for it without holding it (on a
            // sender's word that it was collected), and the delete answers for a value
            // it superseded, which nothing else here would replace.
            let accounted = replica.version_vector().contains(group.origin, entry.seq);
            if accounted && !deletes_what_is_held(replica, group.origin, &entry) {
                continue;
            }
            if let Some(refused) = refusal(&entry, config, clock, wall_ms) {
                let dropped = &mut counters.dropped;
                *match refused {
                    Refusal::Oversized => &mut dropped.oversized,
                    Refusal::ClockDrift => &mut dropped.clock_drift,
                } += 1;
                first_refused = first_refused.min(entry.seq);
                continue;
            }
            let mut merging = Entry {
                value: entry.value,
                hlc: entry.hlc,
                origin: group.origin,
                seq: entry.seq,
                expires: entry.expires,
            };
            // A value already expired here arrives as the tombstone it is everywhere
            // once expired: same identity, no value (see `replica`).
            if merging.is_expired_at(clock.now(wall_ms)) {
                merging.value = None;
            }
            let new_value = events.as_ref().and_then(|_| merging.value.clone());
            let now_live = merging.value.is_some();
            if !accounted {
                merged_seqs.push(entry.seq);
            }
            let hlc = entry.hlc;
            let merged = replica.merge_shared_key(&entry.key, merging);
            if let MergeOutcome::BeatenByDelete {
                origin,
                seq,
                revived,
            } = merged
            {
                let list = if revived { &mut won.revived } else { &mut won.held };
                list.push((origin, seq, seq));
            }
            if let MergeOutcome::Applied { was_live } = merged {
                counters.entries_applied += 1;
                lag.record(hlc, wall_ms);
                if let Some(events) = events.as_deref_mut() {
                    if was_live || now_live {
                        events.push_back(Event::StateChanged {
                            key: entry.key.to_string(),
                            value: new_value,
                            origin: ChangeOrigin::Sync,
                        });
                    }
                }
            }
        }
        // The empty parts of the range are the sender's word: taken up to the origin's
        // own frontier, never beyond (see `frontier`), and only below a refused entry,
        // so the refused write is asked for again. Entries merged beyond are accounted
        // for one by one.
        let bare_hi = frontiers
            .cap(group.origin)
            .map_or(group.hi, |cap| cap.min(group.hi))
            .min(first_refused.saturating_sub(1));
        let whole = (group.lo >= 1 && group.lo <= bare_hi).then_some(group.lo..=bare_hi);
        if let Some(range) = &whole {
            replica.cover(group.origin, *range.start(), *range.end());
        }
        for seq in merged_seqs {
            if !whole.as_ref().is_some_and(|range| range.contains(&seq)) {
                replica.cover(group.origin, seq, seq);
            }
        }
    }
    won.sorted()
}

/// Whether `entry` of `origin` is a delete that beats the entry held for its key, or
/// finds the key neither held nor remembered as collected: a node that accounted for the
/// delete on a sender's word keeps it, so that an older value arriving later loses.
fn deletes_what_is_held(replica: &Replica, origin: OriginId, entry: &WireEntry) -> bool {
    let rank = (entry.hlc, origin, entry.seq);
    entry.value.is_none()
        && match replica.entry(&entry.key) {
            Some(held) => rank > held.rank(),
            None => !replica.remembers_collected(&entry.key, rank),
        }
}

/// Why a received entry is not taken.
enum Refusal {
    /// Its key or value is larger than this node accepts.
    Oversized,
    /// Its timestamp is too far ahead of this node's clock.
    ClockDrift,
}

/// Why a received entry is not taken, if it is not.
fn refusal(
    entry: &WireEntry,
    config: &Config,
    clock: &mut HlcClock,
    wall_ms: u64,
) -> Option<Refusal> {
    let oversized = entry.key.len() > config.max_key_len
        || entry
            .value
            .as_ref()
            .is_some_and(|v| v.encoded_len() > config.max_value_size);
    if oversized {
        return Some(Refusal::Oversized);
    }
    // A value that expired at the sender travels without it: the sender's clock had
    // reached the expiry, so this node's clock moves there too (as for any timestamp
    // received), and the value is expired here as well.
    let expired_at = entry.expires.filter(|_| entry.value.is_none());
    if let Some(expires) = expired_at {
        if clock.check(expires, wall_ms).is_err() {
            return Some(Refusal::ClockDrift);
        }
    }
    if clock.observe(entry.hlc, wall_ms).is_err() {
        return Some(Refusal::ClockDrift);
    }
    if let Some(expires) = expired_at {
        let _ = clock.observe(expires, wall_ms);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn replica_with(origin: OriginId, writes: usize, value_len: usize) -> Replica {
        let mut r = Replica::new(origin);
        for i in 0..writes {
            r.write_local(
                &format!("k{i:04}"),
                Some(Value::Bytes(vec![1; value_len])),
                i as u64 + 1,
            );
        }
        r
    }

    #[test]
    fn missing_ranges_start_above_the_peer_prefix() {
        let mut vv = VersionVector::default();
        vv.insert_range(7, 1, 10);
        vv.insert_range(9, 1, 3);
        vv.insert_range(9, 6, 8);
        vv.insert_range(5, 1, 2);
        let theirs: PeerDigest = [(7, 4), (9, 7), (5, 2)].into_iter().collect();
        assert_eq!(
            Vec::from(missing_ranges(&vv, &theirs)),
            vec![(7, 5, 10), (9, 8, 8)]
        );
        let nothing = PeerDigest::new();
        assert_eq!(
            Vec::from(missing_ranges(&vv, &nothing)),
            vec![(5, 1, 2), (7, 1, 10), (9, 1, 3), (9, 6, 8)]
        );
    }

    #[test]
    fn deltas_respect_the_budget_and_cover_the_range_without_gaps() {
        let replica = replica_with(3, 200, 40);
        let budget = 1000;
        let mut ranges = VecDeque::from([(3, 1, 200)]);
        let mut next = 1;
        let mut deltas = 0;
        while !ranges.is_empty() {
            let delta = build_delta(&replica, &mut ranges, budget, false);
            let encoded = wire::encode_message(&Message::Delta(delta.clone()));
            assert!(encoded.len() <= budget, "{} > {budget}", encoded.len());
            for group in &delta.groups {
                assert_eq!(group.lo, next, "ranges follow each other");
                assert!(group.entries.iter().all(|e| (group.lo..=group.hi).contains(&e.seq)));
                next = group.hi + 1;
            }
            deltas += 1;
        }
        assert_eq!(next, 201);
        assert!(deltas > 5, "200 entries of ~50 B need several 1 KB deltas");
    }

    #[test]
    fn deltas_fill_the_budget_but_for_less_than_an_entry() {
        // Writes of about a hundred bytes, as pushed in one datagram each.
        let replica = replica_with(3, 200, 100);
        let budget = 856;
        let mut ranges = VecDeque::from([(3, 1, 200)]);
        let mut sizes = Vec::new();
        while !ranges.is_empty() {
            let delta = build_delta(&replica, &mut ranges, budget, false);
            sizes.push(wire::encode_message(&Message::Delta(delta)).len());
        }
        let entry = {
            let mut one = VecDeque::from([(3, 1, 1)]);
            let delta = build_delta(&replica, &mut one, budget, false);
            wire::entries::encoded_len(&delta.groups[0].entries[0], (0, 0)).unwrap()
        };
        sizes.pop();
        for size in sizes {
            assert!(size <= budget, "{size} > {budget}");
            // Room for the next entry, its group's fields counted at their bound, was
            // missing; the estimate used to leave nearly two entries' room unused.
            let unused = budget - size;
            assert!(
                unused < entry + GROUP_FIELDS_BYTES + DELTA_ENVELOPE_BYTES,
                "{unused} bytes unused, entries of {entry}"
            );
        }
    }

    #[test]
    fn an_entry_larger_than_the_budget_travels_alone() {
        let replica = replica_with(3, 3, 5000);
        let mut ranges = VecDeque::from([(3, 1, 3)]);
        for seq in 1..=3 {
            let delta = build_delta(&replica, &mut ranges, 1000, false);
            assert_eq!(delta.groups.len(), 1);
            assert_eq!(delta.groups[0].entries.len(), 1);
            assert_eq!((delta.groups[0].lo, delta.groups[0].hi), (seq, seq));
        }
        assert!(ranges.is_empty());
    }

    #[test]
    fn a_delete_accounted_for_but_not_held_is_taken_when_it_beats_the_held_value() {
        let config = Config::new("n", 0);
        let mut replica = Replica::new(1);
        let value = |seq, hlc| WireEntry {
            hlc,
            ..wire_entry(seq, "k", Value::Int(seq as i64))
        };
        merge(group(7, 1, 1, vec![value(1, 10)]), &mut replica, &config);
        // A sender's word that 8:1 was collected: accounted for, the value still held.
        merge(group(8, 1, 1, Vec::new()), &mut replica, &config);
        assert!(replica.version_vector().contains(8, 1));
        let delete = |hlc| WireEntry {
            value: None,
            hlc,
            ..wire_entry(1, "k", Value::Int(0))
        };
        merge(group(8, 1, 1, vec![delete(5)]), &mut replica, &config);
        assert_eq!(replica.get("k"), Some(&Value::Int(1)), "older than the value");
        let counters = merge(group(8, 1, 1, vec![delete(20)]), &mut replica, &config);
        assert_eq!(replica.get("k"), None);
        assert_eq!(counters.entries_applied, 1);
        // An accounted value, though, never replaces what is held.
        merge(group(7, 1, 1, Vec::new()), &mut replica, &config);
        merge(group(9, 1, 1, Vec::new()), &mut replica, &config);
        merge(group(9, 1, 1, vec![value(1, 30)]), &mut replica, &config);
        assert_eq!(replica.get("k"), None);
    }

    #[test]
    fn an_accounted_delete_of_a_key_not_held_is_kept_unless_remembered() {
        let config = Config::new("n", 0);
        let mut replica = Replica::new(1);
        let delete = |key: &str| WireEntry {
            value: None,
            hlc: 20,
            ..wire_entry(1, key, Value::Int(0))
        };
        // Accounted for on a sender's word, the key never held: a later older value
        // must lose to the delete.
        merge(group(8, 1, 1, Vec::new()), &mut replica, &config);
        merge(group(8, 1, 1, vec![delete("k")]), &mut replica, &config);
        assert_eq!(replica.tombstone_len(), 1);
        let older = WireEntry {
            hlc: 10,
            ..wire_entry(1, "k", Value::Int(1))
        };
        merge(group(7, 1, 1, vec![older]), &mut replica, &config);
        assert_eq!(replica.get("k"), None);
        // Collected and remembered here: a copy arriving late is not taken again.
        replica.collect_tombstones(|_| true);
        merge(group(8, 1, 1, vec![delete("k")]), &mut replica, &config);
        assert_eq!(replica.tombstone_len(), 0);
        assert_eq!(replica.collected_len(), 1);
    }

    #[test]
    fn a_value_beaten_by_a_delete_names_the_delete_for_the_sender() {
        let config = Config::new("n", 0);
        let frontiers = Frontiers::default();
        let mut replica = Replica::new(1);
        replica.write_local("k", None, 50);
        let stale = group(7, 1, 2, vec![wire_entry(2, "k", Value::Int(2))]);
        let (_, beaten_by) = merge_reporting(stale, &mut replica, &config, &frontiers);
        assert_eq!(beaten_by.held, vec![(1, 1, 1)]);
        assert!(beaten_by.revived.is_empty());
        let fresh = group(7, 3, 3, vec![wire_entry(3, "j", Value::Int(3))]);
        let (_, beaten_by) = merge_reporting(fresh, &mut replica, &config, &frontiers);
        assert_eq!(beaten_by, DeletesThatWon::default());
    }

    #[test]
    fn superseded_writes_leave_the_range_covered_but_empty() {
        let mut replica = Replica::new(3);
        replica.write_local("a", Some(Value::Int(1)), 1);
        replica.write_local("a", Some(Value::Int(2)), 2);
        let messages = encoded_deltas(&replica, VecDeque::from([(3, 1, 2)]), 1000, false);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].covered, vec![((3, 1, 2), 1)]);
        let Ok(Message::Delta(delta)) = wire::decode_message(&messages[0].bytes) else {
            panic!("a delta");
        };
        assert_eq!((delta.groups[0].lo, delta.groups[0].hi), (1, 2));
        assert_eq!(delta.groups[0].entries.len(), 1);
    }

    fn merge(delta: Delta, replica: &mut Replica, config: &Config) -> Counters {
        merge_vouched(delta, replica, config, &Frontiers::default())
    }

    fn merge_vouched(
        delta: Delta,
        replica: &mut Replica,
        config: &Config,
        frontiers: &Frontiers,
    ) -> Counters {
        merge_reporting(delta, replica, config, frontiers).0
    }

    /// [`merge_delta`] with a fresh clock, no member origin, and the wall clock at 100 ms;
    /// returns the counters and the deletes that won.
    fn merge_reporting(
        delta: Delta,
        replica: &mut Replica,
        config: &Config,
        frontiers: &Frontiers,
    ) -> (Counters, DeletesThatWon) {
        let mut clock = HlcClock::new(config.max_clock_drift.as_millis() as u64);
        let mut counters = Counters::default();
        let mut lag = PropagationLag::default();
        let rules = MergeRules {
            config,
            frontiers,
            wall_ms: 100,
            is_member: &|_| false,
        };
        let won = merge_delta(
            delta,
            replica,
            &mut clock,
            &rules,
            &mut counters,
            &mut lag,
            None,
        );
        assert_eq!(lag.count, counters.entries_applied);
        (counters, won)
    }

    fn group(origin: OriginId, lo: u64, hi: u64, entries: Vec<WireEntry>) -> Delta {
        Delta {
            groups: vec![Group {
                origin,
                lo,
                hi,
                entries,
            }],
        }
    }

    fn wire_entry(seq: u64, key: &str, value: Value) -> WireEntry {
        WireEntry {
            seq,
            hlc: seq,
            key: key.into(),
            value: Some(value),
            expires: None,
        }
    }

    #[test]
    fn only_groups_merged_whole_are_credited() {
        let mut config = Config::new("n", 0);
        config.max_value_size = 100;
        let mut replica = Replica::new(1);
        let whole = group(8, 1, 2, vec![wire_entry(2, "a", Value::Int(1))]);
        let counters = merge(whole, &mut replica, &config);
        assert_eq!(counters.entries_applied, 1);
        assert_eq!(replica.version_vector().upto(8), 2);
        let partial = group(
            9,
            1,
            2,
            vec![
                wire_entry(1, "b", Value::Int(1)),
                wire_entry(2, "c", Value::Bytes(vec![0; 500])),
            ],
        );
        let counters = merge(partial, &mut replica, &config);
        assert_eq!(counters.dropped.oversized, 1);
        assert_eq!(replica.get("b"), Some(&Value::Int(1)));
        let vv = replica.version_vector();
        assert_eq!(vv.upto(9), 1, "the entry merged is accounted for");
        assert!(!vv.contains(9, 2), "the refused entry stays open");
    }

    #[test]
    fn entries_taken_beside_a_refused_one_are_credited_and_offered_on() {
        let mut config = Config::new("n", 0);
        config.max_value_size = 100;
        let mut relay = Replica::new(1);
        let mixed = group(
            9,
            1,
            4,
            vec![
                wire_entry(1, "a", Value::Int(1)),
                wire_entry(2, "big", Value::Bytes(vec![0; 500])),
                wire_entry(3, "b", Value::Int(3)),
                wire_entry(4, "c", Value::Int(4)),
            ],
        );
        merge(mixed, &mut relay, &config);
        let vv = relay.version_vector();
        assert!(vv.contains(9, 1) && vv.contains(9, 3) && vv.contains(9, 4));
        assert!(!vv.contains(9, 2), "the refused entry stays open");
        // A node that holds nothing of the origin gets every entry taken, whatever the
        // hole below them.
        let mut stream = missing_ranges(vv, &PeerDigest::new());
        let mut next = Replica::new(2);
        while !stream.is_empty() {
            let delta = build_delta(&relay, &mut stream, 1_200, false);
            merge(delta, &mut next, &config);
        }
        for (key, value) in [("a", 1), ("b", 3), ("c", 4)] {
            assert_eq!(next.get(key), Some(&Value::Int(value)), "{key}");
        }
        assert_eq!(next.get("big"), None);
        let vv = next.version_vector();
        assert!(vv.contains(9, 1) && vv.contains(9, 3) && vv.contains(9, 4));
        assert!(!vv.contains(9, 2), "nor does the next node credit the hole");
    }

    #[test]
    fn empty_parts_of_a_range_stop_at_the_origins_frontier() {
        let config = Config::new("n", 0);
        let mut frontiers = Frontiers::default();
        frontiers.vouch(8, "127.0.0.1:1".parse().unwrap(), 3);
        let mut replica = Replica::new(1);
        let forged = group(
            8,
            1,
            1 << 62,
            vec![
                wire_entry(2, "a", Value::Int(1)),
                wire_entry(9, "b", Value::Int(2)),
            ],
        );
        merge_vouched(forged, &mut replica, &config, &frontiers);
        let vv = replica.version_vector();
        assert_eq!(vv.upto(8), 3, "the range up to the frontier");
        assert!(vv.contains(8, 9), "an entry carried beyond it");
        assert!(!vv.contains(8, 4) && !vv.contains(8, 10), "nothing else beyond it");

        // Without a frontier (an origin nobody vouched for), the sender's word stands.
        let mut replica = Replica::new(1);
        merge(group(8, 1, 20, Vec::new()), &mut replica, &config);
        assert_eq!(replica.version_vector().upto(8), 20);
    }

    #[test]
    fn a_new_origin_past_the_cap_is_refused_and_counted_unless_retired_below_its_record() {
        let mut config = Config::new("n", 0);
        config.max_origins = 2;
        let mut replica = Replica::new(1);
        merge(group(8, 1, 1, vec![wire_entry(1, "a", Value::Int(1))]), &mut replica, &config);
        merge(group(9, 1, 2, Vec::new()), &mut replica, &config);
        let counters = merge(
            group(10, 1, 1, vec![wire_entry(1, "b", Value::Int(1))]),
            &mut replica,
            &config,
        );
        assert_eq!(counters.dropped.origins, 1);
        assert_eq!(counters.entries_received, 0, "nothing of the group is looked at");
        assert_eq!(replica.get("b"), None);
        assert!(!replica.version_vector().contains(10, 1), "left open");
        // A known origin still grows; a retired one is still accounted for up to its
        // record, and coming back above it counts as new.
        let counters = merge(group(8, 2, 2, vec![wire_entry(2, "c", Value::Int(2))]), &mut replica, &config);
        assert_eq!((counters.dropped.origins, replica.get("c")), (0, Some(&Value::Int(2))));
        assert!(replica.retire(9));
        let counters = merge(group(9, 1, 2, vec![wire_entry(2, "old", Value::Int(0))]), &mut replica, &config);
        assert_eq!((counters.dropped.origins, replica.get("old")), (0, None));
        let counters = merge(group(9, 3, 3, vec![wire_entry(3, "new", Value::Int(0))]), &mut replica, &config);
        assert_eq!(counters.dropped.origins, 0, "room left by the retired origin");
        assert_eq!(replica.get("new"), Some(&Value::Int(0)));
        // A member's origin is taken past the cap.
        let mut clock = HlcClock::new(config.max_clock_drift.as_millis() as u64);
        let (mut counters, mut lag) = (Counters::default(), PropagationLag::default());
        let frontiers = Frontiers::default();
        let rules = MergeRules {
            config: &config,
            frontiers: &frontiers,
            wall_ms: 100,
            is_member: &|origin| origin == 11,
        };
        for origin in [11, 12] {
            let delta = group(origin, 1, 1, vec![wire_entry(1, "m", Value::Int(origin as i64))]);
            merge_delta(delta, &mut replica, &mut clock, &rules, &mut counters, &mut lag, None);
        }
        assert_eq!(replica.get("m"), Some(&Value::Int(11)));
        assert_eq!(counters.dropped.origins, 1);
    }

    #[test]
    fn a_peer_that_retires_an_origin_still_accounts_for_what_it_reported() {
        let mut vv = VersionVector::default();
        vv.insert_range(8, 1, 5);
        let mut sync = PeerSync::default();
        sync.on_request([(8, 5), (9, 2)].into_iter().collect(), Want::All, &vv, true, Some);
        sync.on_request([(9, 2)].into_iter().collect(), Want::All, &vv, true, Some);
        let view = sync.view().expect("a digest");
        assert_eq!(view.reported(8), None);
        assert_eq!(view.accounts(8), Some(5));
        assert_eq!(view.accounts(9), Some(2));
        // Once this node holds the origin no more, the peer's word is not kept.
        vv.retire(8);
        sync.on_request([(9, 2)].into_iter().collect(), Want::All, &vv, true, Some);
        assert_eq!(sync.view().unwrap().accounts(8), None);
        sync.reset_session();
        assert!(sync.view().is_none());
    }

    #[test]
    fn writes_already_accounted_for_are_not_merged_again() {
        let config = Config::new("n", 0);
        let mut replica = Replica::new(1);
        merge(group(8, 1, 1, vec![wire_entry(1, "a", Value::Int(1))]), &mut replica, &config);
        replica.write_local("a", None, 50);
        let counters = merge(
            group(8, 1, 1, vec![wire_entry(1, "a", Value::Int(1))]),
            &mut replica,
            &config,
        );
        assert_eq!(counters.entries_applied, 0);
        assert_eq!(replica.get("a"), None, "a late retransmission brings nothing back");
    }

    #[test]
    fn a_request_streams_what_it_wants_and_keeps_the_digest_as_sent() {
        let mut vv = VersionVector::default();
        vv.insert_range(7, 1, 10);
        vv.insert_range(9, 1, 4);
        let theirs: PeerDigest = [(7, 2)].into_iter().collect();
        let mut sync = PeerSync::default();
        sync.on_request(theirs.clone(), Want::All, &vv, true, Some);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 3, 10), (9, 1, 4)]);
        // Another peer streams 7 up to 6 and 9 up to 4: only the rest comes from here.
        // A floor below the digest's prefix changes nothing.
        let above = Want::Above(vec![(7, 6), (9, 4), (8, 1)]);
        sync.on_request(theirs.clone(), above, &vv, true, Some);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 7, 10)]);
        sync.on_request(theirs.clone(), Want::Above(vec![(7, 1)]), &vv, true, Some);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 3, 10), (9, 1, 4)]);
        sync.on_request(theirs.clone(), Want::Nothing, &vv, true, Some);
        assert!(sync.stream.is_empty(), "a new request replaces the stream");
        assert_eq!(sync.digest, Some(theirs), "tombstones are collected on its word");
    }

    #[test]
    fn pushed_writes_and_writes_held_back_are_not_streamed() {
        let replica = replica_with(7, 400, 40);
        let vv = replica.version_vector();
        let mut sync = PeerSync::default();
        // A push of 301..=400 is on its way to the peer, which asks mid-push.
        sync.note_sent((7, 301, 400));
        sync.on_request(PeerDigest::new(), Want::All, vv, false, Some);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 1, 300)]);
        // What `settled` holds back is not streamed either.
        let settled = |(o, lo, hi): SeqRange| (lo <= 200).then_some((o, lo, hi.min(200)));
        sync.on_request(PeerDigest::new(), Want::All, vv, true, settled);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 1, 200)]);
    }

    #[test]
    fn what_is_on_its_way_is_not_streamed_again_until_the_channel_is_idle_or_lost() {
        let replica = replica_with(7, 400, 40);
        let vv = replica.version_vector();
        let mut channel = Channel::new(crate::link::channel_limits(&Config::new("n", 0)));
        let mut sync = PeerSync::default();
        // Asked for what lies above 100 (another peer streams the rest); part of it goes.
        let floors = Want::Above(vec![(7, 100)]);
        sync.on_request(PeerDigest::new(), floors, vv, true, Some);
        sync.refill(&replica, (&mut channel, &mut WritesInFlight::default()), (1_000, 2_000), None);
        let (lo, hi) = sync.sent[&7];
        assert_eq!(lo, 101);
        assert!(hi > lo && hi < 400, "{hi}");
        // Asked again mid-stream, now for everything: the part on its way is skipped,
        // and nothing below it is.
        sync.on_request(PeerDigest::new(), Want::All, vv, false, Some);
        assert_eq!(
            Vec::from(sync.stream.clone()),
            vec![(7, 1, 100), (7, hi + 1, 400)]
        );
        // Once the transport gave data up, anything may be what was lost.
        sync.on_lost_data(0);
        sync.on_request(PeerDigest::new(), Want::All, vv, false, Some);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 1, 400)]);
        // And once the channel is idle, everything streamed has arrived or been given up.
        sync.refill(&replica, (&mut channel, &mut WritesInFlight::default()), (1_000, 2_000), None);
        sync.on_request(PeerDigest::new(), Want::All, vv, true, Some);
        assert_eq!(Vec::from(sync.stream.clone()), vec![(7, 1, 400)]);
    }

    #[test]
    fn a_request_overtaken_by_a_later_one_is_stale() {
        let mut sync = PeerSync::default();
        assert_eq!(sync.next_request_number(), 1);
        assert_eq!(sync.next_request_number(), 2);
        assert!(sync.take_if_latest(2));
        assert!(!sync.take_if_latest(1), "overtaken");
        assert!(!sync.take_if_latest(2), "a duplicate");
        assert!(sync.take_if_latest(3));
        sync.reset_session();
        assert!(sync.take_if_latest(1), "a new session numbers from 1");
        assert_eq!(sync.next_request_number(), 1);
    }

    #[test]
    fn requests_beyond_the_window_are_refused() {
        let mut sync = PeerSync::default();
        let served = (0..100).filter(|i| sync.admit_request(1_000 + i)).count();
        assert_eq!(served, MAX_REQUESTS_PER_WINDOW as usize);
        assert!(sync.admit_request(1_000 + REQUEST_WINDOW_US));
    }

    #[test]
    fn the_answer_to_a_rounds_question_calls_for_a_sync_even_with_data_in_flight() {
        let mut sync = PeerSync::default();
        sync.question();
        sync.on_fingerprint(1, 1, false, 100, 0);
        assert_eq!(sync.due_us, None, "in step: nothing to sync");
        sync.question();
        sync.on_fingerprint(1, 2, false, 100, 0);
        assert_eq!(sync.due_us, Some(0), "the round's answer differs");
        assert!(sync.take_due(0));
        sync.last_us = Some(0);
        sync.on_fingerprint(1, 2, false, 100, 10);
        assert_eq!(sync.due_us, None, "a question is answered once");
        sync.question();
        sync.on_fingerprint(1, 2, true, 100, 20);
        assert_eq!(sync.due_us, Some(20), "the round is not paced by the triggers' gap");
    }

    #[test]
    fn sync_triggers_are_paced() {
        let mut sync = PeerSync::default();
        sync.on_fingerprint(1, 2, false, 100, 0);
        assert_eq!(sync.due_us, None, "something in flight explains the difference");
        sync.on_fingerprint(1, 1, true, 100, 0);
        assert_eq!(sync.due_us, None, "same fingerprint");
        sync.last_us = Some(50);
        sync.on_fingerprint(1, 2, true, 100, 60);
        assert_eq!(sync.due_us, Some(150));
        assert!(!sync.take_due(149));
        assert!(sync.take_due(150));
        assert_eq!(sync.due_us, None);
        sync.on_lost_data(160);
        assert_eq!(sync.due_us, Some(50 + MIN_TRIGGERED_SYNC_GAP_US));
    }
}
