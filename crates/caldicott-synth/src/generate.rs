//! The generator: GP practices for a seed, and every resource of one patient.

use caldicott_core::{NHS_NUMBER_SYSTEM, NhsNumber, ODS_ORGANISATION_SYSTEM, OdsCode};
use serde::Serialize;

use crate::SynthResource;
use crate::codes::{self, ConditionDef, EncounterKind, VitalSign};
use crate::data::{self, Town};
use crate::date::{self, Date, DateTime, HISTORY_START_DAY, REFERENCE_DAY};
use crate::fhir::{
    self, Address, AddressLine, CodeableConcept, Coding, ContactPoint, Joined, Meta, Num,
    OrganizationReference, Phone, Postcode, Ref, Reference, Uuid,
};
use crate::rng::{SmallPermutation, SplitMix64, mix64};

/// Number of distinct patients a seed can have: the 999 test range has 10^6 nine-digit
/// prefixes; taking 9 valid numbers from each block of ten (at most one in ten has no check
/// digit) gives a closed-form, allocation-free bijection onto 900,000 of the ~909,000 valid
/// numbers.
pub(crate) const NHS_SLOTS: u32 = 900_000;

/// Domain-separation constants (arbitrary, fixed forever: changing one changes all output).
const DOMAIN_PATIENT: u64 = 0x7061_7469_656e_7473; // "patients"
const DOMAIN_PRACTICE: u64 = 0x7072_6163_7469_6365; // "practice"
const DOMAIN_NHS: u64 = 0x6e68_735f_6e75_6d73; // "nhs_nums"
const DOMAIN_ID: [u64; 3] = [
    0x6964_5f6b_6579_5f31, // "id_key_1"
    0x6964_5f6b_6579_5f32, // "id_key_2"
    0x6964_5f6b_6579_5f33, // "id_key_3"
];

/// Patient indices use the low 48 bits of an id key; this index is reserved for practices.
const ORGANIZATION_INDEX: u64 = (1 << 48) - 1;

const MAX_ENCOUNTERS: usize = 4;

/// The vital signs, in the order they are taken at an encounter.
const VITAL_SIGNS: [&VitalSign; 4] = [
    &codes::HEART_RATE,
    &codes::SYSTOLIC,
    &codes::BODY_WEIGHT,
    &codes::BODY_TEMPERATURE,
];

/// A GP practice of the data set.
#[derive(Debug)]
struct Practice {
    id: Uuid,
    ods: OdsCode,
    name: Joined,
    town: &'static Town,
    line: [AddressLine; 1],
    postcode: Postcode,
    phone: u16,
    /// Relative list size.
    weight: u32,
    care_homes: [CareHome; 2],
}

#[derive(Debug)]
struct CareHome {
    lines: [AddressLine; 2],
    postcode: Postcode,
}

/// Generates a deterministic synthetic population. See the crate documentation.
#[derive(Debug)]
pub struct Generator {
    seed: u64,
    patient_key: u64,
    id_keys: [u64; 3],
    nhs_slots: SmallPermutation,
    practices: Vec<Practice>,
    practice_weights: Vec<u32>,
}

impl Generator {
    /// A generator for `seed`. Cheap (a few microseconds): it only lays out the 5–10 GP
    /// practices.
    pub fn new(seed: u64) -> Self {
        let id_keys = DOMAIN_ID.map(|d| mix64(seed ^ d));
        let mut g = Self {
            seed,
            patient_key: mix64(seed ^ DOMAIN_PATIENT),
            id_keys,
            nhs_slots: SmallPermutation::new(mix64(seed ^ DOMAIN_NHS), NHS_SLOTS),
            practices: Vec::new(),
            practice_weights: Vec::new(),
        };
        g.practices = g.make_practices();
        g.practice_weights = g.practices.iter().map(|p| p.weight).collect();
        g
    }

    /// The seed this generator was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// All resources of patient number `index` (Patient first, then Encounters,
    /// Observations, Conditions and MedicationStatements), deterministic in
    /// (seed, index) alone, so any patient can be generated independently and in parallel.
    ///
    /// Indices below [`crate::MAX_PATIENTS`] get distinct NHS numbers; from there on the
    /// numbers repeat (index `i` shares its number with `i % MAX_PATIENTS`). Resource ids are
    /// distinct for all indices below 2^48 - 1. Ids are UUID-shaped but derived from
    /// `(seed, index)`, not random: anyone with the seed can recompute them.
    pub fn patient(&self, index: u64) -> Vec<SynthResource> {
        let mut out = Vec::with_capacity(24);
        self.patient_into(index, &mut out);
        out
    }

    /// The GP practices (ODS code, name) patients are registered with, as UK Core
    /// Organization resources.
    pub fn organizations(&self) -> Vec<SynthResource> {
        self.practices
            .iter()
            .map(|p| {
                let org = fhir::Organization {
                    resource_type: "Organization",
                    id: p.id,
                    meta: Meta {
                        profile: [fhir::ORGANIZATION_PROFILE],
                    },
                    identifier: [fhir::Identifier {
                        use_: Some("official"),
                        system: ODS_ORGANISATION_SYSTEM,
                        value: p.ods.as_str(),
                    }],
                    active: true,
                    type_: [CodeableConcept::new(
                        fhir::ORGANIZATION_TYPE_SYSTEM,
                        "prov",
                        "Healthcare Provider",
                    )],
                    name: p.name,
                    telecom: [ContactPoint {
                        system: "phone",
                        value: Phone::Landline(p.phone),
                        use_: "work",
                    }],
                    address: [Address {
                        use_: "work",
                        line: &p.line,
                        city: p.town.name,
                        postal_code: p.postcode,
                        country: "GB",
                    }],
                };
                resource("Organization", p.id, &org)
            })
            .collect()
    }

    /// The NHS number of patient `index`: a keyed bijection from the index onto the 999
    /// range, so patients of one seed never share a number below [`NHS_SLOTS`].
    pub(crate) fn nhs_number(&self, index: u64) -> NhsNumber {
        let slot = self.nhs_slots.apply((index % u64::from(NHS_SLOTS)) as u32);
        let (block, nth) = (slot / 9, slot % 9);
        (0..10)
            .filter_map(|d| NhsNumber::from_nine_digits(999_000_000 + block * 10 + d))
            .nth(nth as usize)
            .expect("every block of ten nine-digit prefixes has at least nine with a check digit")
    }

    /// The id of resource number `ordinal` of patient `index` (or of practice `ordinal`
    /// for [`ORGANIZATION_INDEX`]). The 64-bit key `(index << 16) | ordinal` goes through a
    /// keyed bijection whose 64 bits all land in the id, so ids of one seed never collide.
    fn resource_id(&self, index: u64, ordinal: u16) -> Uuid {
        let key = ((index & ORGANIZATION_INDEX) << 16) | u64::from(ordinal);
        let b = mix64(mix64(key ^ self.id_keys[0]) ^ self.id_keys[1]);
        let filler = mix64(key ^ self.id_keys[2]);
        let x = b >> 4; // 60 bits, around the version nibble
        Uuid {
            hi: ((x >> 12) << 16) | (0x4 << 12) | (x & 0xfff),
            lo: (0b10 << 62) | ((b & 0xf) << 58) | (filler & ((1 << 58) - 1)),
        }
    }

    fn make_practices(&self) -> Vec<Practice> {
        let mut rng = SplitMix64::new(mix64(self.seed ^ DOMAIN_PRACTICE));
        let count = 5 + rng.below(6) as usize;
        let towns = sample_distinct(&mut rng, data::TOWNS.len(), count);
        let names = sample_distinct(&mut rng, data::PRACTICE_NAMES.len(), count);
        let phone_start = rng.below(1000) as u16;
        let mut codes: Vec<String> = Vec::with_capacity(count);
        let mut practices = Vec::with_capacity(count);
        for i in 0..count {
            let ods_text = loop {
                let letter = char::from(rng.choose(b"ABCDEFGHJKLMNP"));
                let code = format!("{letter}{}{:03}", rng.between(81, 92), rng.between(1, 150));
                if !codes.contains(&code) {
                    break code;
                }
            };
            let ods = OdsCode::parse(&ods_text).expect("letter + five digits is a valid ODS code");
            codes.push(ods_text);
            let town = &data::TOWNS[towns[i]];
            let care_home_names = sample_distinct(&mut rng, data::CARE_HOME_NAMES.len(), 2);
            let care_homes = [0, 1].map(|k| CareHome {
                lines: [
                    AddressLine::Named(
                        data::CARE_HOME_NAMES[care_home_names[k]],
                        if rng.chance(500) {
                            "Care Home"
                        } else {
                            "Nursing Home"
                        },
                    ),
                    house(&mut rng),
                ],
                postcode: postcode(&mut rng, town),
            });
            practices.push(Practice {
                id: self.resource_id(ORGANIZATION_INDEX, i as u16),
                ods,
                name: Joined(
                    data::PRACTICE_NAMES[names[i]],
                    rng.choose(data::PRACTICE_SUFFIXES),
                ),
                town,
                line: [house(&mut rng)],
                postcode: postcode(&mut rng, town),
                phone: (phone_start + 97 * i as u16) % 1000,
                weight: rng.between(2, 6),
                care_homes,
            });
        }
        practices
    }

    /// Appends patient `index`'s resources to `out`.
    pub(crate) fn patient_into(&self, index: u64, out: &mut Vec<SynthResource>) {
        let mut rng = SplitMix64::new(mix64(self.patient_key ^ mix64(index)));
        let mut ordinal: u16 = 0;
        let mut next_id = || {
            let id = self.resource_id(index, ordinal);
            ordinal += 1;
            id
        };

        // Demographics.
        let patient_id = next_id();
        let patient_ref = Reference {
            reference: Ref {
                resource_type: "Patient",
                id: patient_id,
            },
        };
        let practice = &self.practices[rng.weighted(&self.practice_weights)];
        let practice_ref = || Reference {
            reference: Ref {
                resource_type: "Organization",
                id: practice.id,
            },
        };
        let age = sample_age(&mut rng);
        let birth_day = REFERENCE_DAY - (age * 36_524 / 100) as i32 - 1 - rng.below(365) as i32;
        let age_days = (REFERENCE_DAY - birth_day) as u32;
        let age_years = age_days * 100 / 36_525;
        let (birth_year, _, _) = date::civil_from_days(birth_day);
        let era = match birth_year {
            ..1950 => 0,
            1950..1990 => 1,
            _ => 2,
        };
        let gender = ["female", "male", "other", "unknown"][rng.weighted(&[505, 490, 3, 2])];
        let names = match gender {
            "female" => data::FEMALE_NAMES[era],
            "male" => data::MALE_NAMES[era],
            _ if rng.chance(500) => data::FEMALE_NAMES[era],
            _ => data::MALE_NAMES[era],
        };
        let first = rng.choose(names);
        let second = rng.choose(names);
        let given_buf = [first, second];
        let given: &[&str] = if second != first && rng.chance(300) {
            &given_buf
        } else {
            &given_buf[..1]
        };
        let family = rng.choose(data::SURNAMES);
        let prefix = if age_years >= 18 && rng.chance(350) {
            Some([match gender {
                _ if rng.chance(30) => "Dr",
                "male" => "Mr",
                "female" => rng.choose(&["Mrs", "Mrs", "Ms", "Miss"]),
                _ => "Mx",
            }])
        } else {
            None
        };
        let care_home = (age_years >= 75 && rng.chance(if age_years >= 85 { 300 } else { 100 }))
            .then(|| &practice.care_homes[rng.below(2) as usize]);
        let home_lines: [AddressLine; 2];
        let (line, postal_code): (&[AddressLine], Postcode) = match care_home {
            Some(home) => (&home.lines, home.postcode),
            None => {
                let street = house(&mut rng);
                let pc = postcode(&mut rng, practice.town);
                if rng.chance(120) {
                    home_lines = [AddressLine::Flat(rng.between(1, 24) as u16), street];
                    (&home_lines, pc)
                } else {
                    home_lines = [street, street];
                    (&home_lines[..1], pc)
                }
            }
        };
        let nhs = self.nhs_number(index);
        let ods = || fhir::Identifier {
            use_: None,
            system: ODS_ORGANISATION_SYSTEM,
            value: practice.ods.as_str(),
        };
        let gp_ref = || OrganizationReference {
            reference: practice_ref().reference,
            type_: "Organization",
            identifier: ods(),
            display: practice.name,
        };
        let patient = fhir::Patient {
            resource_type: "Patient",
            id: patient_id,
            meta: Meta {
                profile: [fhir::PATIENT_PROFILE],
            },
            identifier: [fhir::NhsNumberIdentifier {
                extension: [fhir::Extension {
                    url: fhir::NHS_NUMBER_VERIFICATION_EXTENSION,
                    value_codeable_concept: CodeableConcept::new(
                        fhir::NHS_NUMBER_VERIFICATION_SYSTEM,
                        "01",
                        "Number present and verified",
                    ),
                }],
                system: NHS_NUMBER_SYSTEM,
                value: nhs.as_str(),
            }],
            name: [fhir::HumanName {
                use_: "official",
                family,
                given,
                prefix,
            }],
            telecom: [ContactPoint {
                system: "phone",
                value: Phone::Mobile(rng.below(1000) as u16),
                use_: "mobile",
            }],
            gender,
            birth_date: Date(birth_day),
            address: [Address {
                use_: "home",
                line,
                city: practice.town.name,
                postal_code,
                country: "GB",
            }],
            general_practitioner: [gp_ref()],
            managing_organization: gp_ref(),
        };
        out.push(resource("Patient", patient_id, &patient));

        // Long-term conditions are decided first: they shape the encounters and vitals.
        let mut conditions = [0usize; 3];
        let condition_count =
            choose_conditions(&mut rng, age_years, care_home.is_some(), &mut conditions);
        let conditions = &conditions[..condition_count];
        let has = |c: usize| conditions.contains(&c);

        // Encounters.
        // Within the five-year history, and not before the patient was born.
        let first_day = HISTORY_START_DAY.max(birth_day).min(REFERENCE_DAY - 1);
        let span = (REFERENCE_DAY - first_day).max(1) as u64;
        let encounter_count = match (age_years, care_home.is_some()) {
            (_, true) => rng.between(3, 4),
            (..18, _) => rng.between(1, 2),
            (18..65, _) => rng.between(1, 3),
            _ => rng.between(2, 4),
        } as usize;
        let mut days = [0i32; MAX_ENCOUNTERS];
        for d in &mut days[..encounter_count] {
            let mut day = first_day + rng.below(span) as i32;
            day += match date::weekday(day) {
                5 => -1,
                6 => 1,
                _ => 0,
            };
            *d = day.clamp(first_day, REFERENCE_DAY - 1);
        }
        days[..encounter_count].sort_unstable();
        let mut encounters: [(Uuid, DateTime, &EncounterKind); MAX_ENCOUNTERS] =
            [(patient_id, DateTime { day: 0, minute: 0 }, &codes::SURGERY); MAX_ENCOUNTERS];
        let in_person_default: &EncounterKind = if care_home.is_some() {
            &codes::HOME_VISIT
        } else {
            &codes::SURGERY
        };
        let forced_in_person = rng.below(encounter_count as u64) as usize;
        for (i, &day) in days[..encounter_count].iter().enumerate() {
            let kind: &EncounterKind = if i == forced_in_person {
                in_person_default
            } else if care_home.is_some() {
                [&codes::HOME_VISIT, &codes::SURGERY, &codes::TELEPHONE][rng.weighted(&[5, 3, 2])]
            } else if age_years >= 85 {
                [&codes::HOME_VISIT, &codes::SURGERY, &codes::TELEPHONE]
                    [rng.weighted(&[15, 60, 25])]
            } else {
                [&codes::SURGERY, &codes::TELEPHONE][rng.weighted(&[7, 3])]
            };
            let start = DateTime {
                day,
                minute: 8 * 60 + 10 * rng.below(54) as u32,
            };
            let minutes = if kind.class_code == "HH" {
                30
            } else {
                rng.choose(&[10, 10, 15, 20])
            };
            let id = next_id();
            encounters[i] = (id, start, kind);
            let enc = fhir::Encounter {
                resource_type: "Encounter",
                id,
                meta: Meta {
                    profile: [fhir::ENCOUNTER_PROFILE],
                },
                status: "finished",
                class: Coding {
                    system: codes::V3_ACT_CODE,
                    code: kind.class_code,
                    display: kind.class_display,
                },
                type_: [CodeableConcept::new(
                    codes::SNOMED,
                    kind.type_code,
                    kind.type_display,
                )],
                subject: Reference {
                    reference: patient_ref.reference,
                },
                period: fhir::Period {
                    start,
                    end: start.plus_minutes(minutes),
                },
                service_provider: practice_ref(),
            };
            out.push(resource("Encounter", id, &enc));
        }
        let encounters = &encounters[..encounter_count];
        let enc_ref = |id: Uuid| Reference {
            reference: Ref {
                resource_type: "Encounter",
                id,
            },
        };

        // Vital signs, taken at in-person encounters around stable personal baselines.
        let mut in_person = [0usize; MAX_ENCOUNTERS];
        let mut in_person_count = 0;
        for (i, e) in encounters.iter().enumerate() {
            if e.2.in_person {
                in_person[in_person_count] = i;
                in_person_count += 1;
            }
        }
        let in_person = &in_person[..in_person_count];
        let baseline = Baseline::new(&mut rng, age_days, gender, has(codes::HYPERTENSION));
        let requested = match age_years {
            ..16 => rng.between(2, 4),
            16..65 => rng.between(2, 7),
            _ => rng.between(3, 10),
        } as usize;
        // No blood pressure for children; at most one reading of each sign per encounter.
        let sign_weights: [u32; 4] = if age_years < 16 {
            [35, 0, 40, 25]
        } else {
            [30, 35, 20, 15]
        };
        let signs_per_encounter = sign_weights.iter().filter(|w| **w > 0).count();
        let observation_count = requested.min(in_person.len() * signs_per_encounter);
        let mut taken = [[false; 4]; MAX_ENCOUNTERS];
        let mut readings = [(0usize, 0usize); MAX_ENCOUNTERS * 4];
        for reading in &mut readings[..observation_count] {
            *reading = loop {
                let e = rng.below(in_person.len() as u64) as usize;
                let mut w = sign_weights;
                for (w, taken) in w.iter_mut().zip(taken[e]) {
                    if taken {
                        *w = 0;
                    }
                }
                if w.iter().any(|w| *w > 0) {
                    let k = rng.weighted(&w);
                    taken[e][k] = true;
                    break (in_person[e], k);
                }
            };
        }
        readings[..observation_count].sort_unstable();
        for &(enc_index, sign_index) in &readings[..observation_count] {
            let (enc_id, enc_start, _) = encounters[enc_index];
            let sign = VITAL_SIGNS[sign_index];
            let value = baseline.reading(&mut rng, sign, has(codes::ATRIAL_FIBRILLATION));
            let id = next_id();
            let obs = fhir::Observation {
                resource_type: "Observation",
                id,
                meta: Meta {
                    profile: [sign.profile],
                },
                status: "final",
                category: [CodeableConcept::new(
                    fhir::OBSERVATION_CATEGORY_SYSTEM,
                    "vital-signs",
                    "Vital Signs",
                )],
                code: CodeableConcept::new(codes::LOINC, sign.loinc, sign.display),
                subject: Reference {
                    reference: patient_ref.reference,
                },
                encounter: enc_ref(enc_id),
                effective_date_time: enc_start.plus_minutes(sign_index as u32 + 1),
                performer: [practice_ref()],
                value_quantity: fhir::Quantity {
                    value,
                    unit: sign.unit,
                    system: codes::UCUM,
                    code: sign.ucum,
                },
            };
            out.push(resource("Observation", id, &obs));
        }

        // Conditions, each recorded at one of the encounters.
        let mut recorded: [(Uuid, Uuid, Date); 3] = [(patient_id, patient_id, Date(0)); 3];
        for (slot, &c) in conditions.iter().enumerate() {
            let def: &ConditionDef = &codes::CONDITIONS[c];
            let (enc_id, enc_start, _) = rng.choose(encounters);
            let id = next_id();
            let on = Date(enc_start.day);
            recorded[slot] = (id, enc_id, on);
            let cond = fhir::Condition {
                resource_type: "Condition",
                id,
                meta: Meta {
                    profile: [fhir::CONDITION_PROFILE],
                },
                clinical_status: CodeableConcept::new(
                    fhir::CONDITION_CLINICAL_SYSTEM,
                    "active",
                    "Active",
                ),
                verification_status: CodeableConcept::new(
                    fhir::CONDITION_VERIFICATION_SYSTEM,
                    "confirmed",
                    "Confirmed",
                ),
                category: [CodeableConcept::new(
                    fhir::CONDITION_CATEGORY_SYSTEM,
                    "problem-list-item",
                    "Problem List Item",
                )],
                code: CodeableConcept::new(codes::SNOMED, def.code, def.display),
                subject: Reference {
                    reference: patient_ref.reference,
                },
                encounter: enc_ref(enc_id),
                onset_date_time: on,
                recorded_date: on,
            };
            out.push(resource("Condition", id, &cond));
        }

        // Repeat medicines for those conditions (one per medicine, even if two conditions
        // share it), asserted at the latest encounter.
        let last_seen = encounters[encounter_count - 1].1;
        let mut given_meds = [usize::MAX; 4];
        for (slot, &c) in conditions.iter().enumerate() {
            let Some(m) = codes::CONDITIONS[c].medication else {
                continue;
            };
            if given_meds.contains(&m) {
                continue;
            }
            given_meds[slot] = m;
            let def = &codes::MEDICATIONS[m];
            let (condition_id, enc_id, on) = recorded[slot];
            let id = next_id();
            let statement = fhir::MedicationStatement {
                resource_type: "MedicationStatement",
                id,
                meta: Meta {
                    profile: [fhir::MEDICATION_STATEMENT_PROFILE],
                },
                status: "active",
                medication_codeable_concept: CodeableConcept::new(
                    codes::SNOMED,
                    def.code,
                    def.display,
                ),
                subject: Reference {
                    reference: patient_ref.reference,
                },
                context: enc_ref(enc_id),
                effective_period: fhir::PeriodStart { start: on },
                date_asserted: last_seen,
                reason_reference: [Reference {
                    reference: Ref {
                        resource_type: "Condition",
                        id: condition_id,
                    },
                }],
                dosage: [fhir::Dosage { text: def.dosage }],
            };
            out.push(resource("MedicationStatement", id, &statement));
        }
    }
}

/// Serialises one resource. Serialising these plain structs into memory cannot fail.
fn resource<T: Serialize>(resource_type: &'static str, id: Uuid, value: &T) -> SynthResource {
    let mut buf = Vec::with_capacity(1024);
    serde_json::to_writer(&mut buf, value).expect("serialising a FHIR struct into memory");
    SynthResource {
        resource_type,
        id: id.to_string(),
        json: String::from_utf8(buf).expect("serde_json writes UTF-8"),
    }
}

/// `count` distinct indices below `n`, by a partial Fisher–Yates shuffle.
fn sample_distinct(rng: &mut SplitMix64, n: usize, count: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..count {
        let j = i + rng.below((n - i) as u64) as usize;
        all.swap(i, j);
    }
    all.truncate(count);
    all
}

fn house(rng: &mut SplitMix64) -> AddressLine {
    AddressLine::House {
        number: if rng.chance(700) {
            rng.between(1, 60)
        } else {
            rng.between(61, 250)
        } as u16,
        street: rng.choose(data::STREET_NAMES),
        suffix: rng.choose(data::STREET_SUFFIXES),
    }
}

fn postcode(rng: &mut SplitMix64, town: &'static Town) -> Postcode {
    Postcode {
        area: town.area,
        district: rng.choose(town.districts),
        sector: rng.below(10) as u8,
        unit: [
            rng.choose(data::INWARD_LETTERS),
            rng.choose(data::INWARD_LETTERS),
        ],
    }
}

/// An age in whole years, 0–100, skewed towards older people (a GP list with care-home
/// residents): about a third are 65 or over.
fn sample_age(rng: &mut SplitMix64) -> u32 {
    const BANDS: [(u32, u32); 8] = [
        (0, 4),
        (5, 17),
        (18, 29),
        (30, 44),
        (45, 64),
        (65, 74),
        (75, 84),
        (85, 100),
    ];
    const WEIGHTS: [u32; 8] = [5, 12, 12, 15, 20, 13, 13, 10];
    let (lo, hi) = BANDS[rng.weighted(&WEIGHTS)];
    rng.between(lo, hi)
}

/// Picks 0–3 distinct long-term conditions suited to the age; returns how many.
fn choose_conditions(
    rng: &mut SplitMix64,
    age_years: u32,
    in_care_home: bool,
    chosen: &mut [usize; 3],
) -> usize {
    let count = match age_years {
        ..18 => usize::from(rng.chance(120)),
        18..65 => rng.weighted(&[50, 30, 15, 5]),
        _ if in_care_home => rng.weighted(&[5, 25, 35, 35]),
        _ => rng.weighted(&[15, 30, 30, 25]),
    };
    let mut weights = [0u32; 9];
    for (w, def) in weights.iter_mut().zip(codes::CONDITIONS) {
        if age_years >= def.min_age {
            *w = def.weight[usize::from(age_years >= 65)];
        }
    }
    if in_care_home {
        weights[codes::DEMENTIA] *= 4;
    }
    let mut n = 0;
    while n < count && weights.iter().any(|w| *w > 0) {
        let c = rng.weighted(&weights);
        chosen[n] = c;
        weights[c] = 0;
        n += 1;
    }
    n
}

/// A patient's usual vital signs, so repeated readings look like one person.
struct Baseline {
    heart_rate: u32,
    systolic: u32,
    /// Weight in tenths of a kilogram.
    weight_tenths: u32,
    /// Babies are weighed to 10 g, so their weights get two decimal places.
    infant: bool,
}

impl Baseline {
    fn new(rng: &mut SplitMix64, age_days: u32, gender: &str, hypertensive: bool) -> Self {
        let age = age_days / 365;
        let heart_rate = match age {
            0 => rng.between(110, 150),
            1..=5 => rng.between(85, 125),
            6..=12 => rng.between(70, 110),
            _ => rng.between(55, 90),
        };
        let systolic = (100 + age.min(90) / 2 + if hypertensive { 18 } else { 0 })
            .saturating_sub(8)
            + rng.below(17) as u32;
        let male = gender == "male";
        let weight_tenths = match age {
            // About 3.4 kg at birth and 0.6 kg a month for the first year.
            0 => 34 + (age_days / 30) * 6 + rng.below(8) as u32,
            // (age + 4) x 2 kg, the usual paediatric estimate, give or take 15%.
            1..=12 => (age + 4) * 20 * rng.between(85, 115) / 100,
            13..=17 => rng.between(420, 720),
            _ if male => rng.between(620, 1150),
            _ => rng.between(520, 1000),
        };
        let weight_tenths = if age >= 80 {
            weight_tenths.saturating_sub(60)
        } else {
            weight_tenths
        };
        Self {
            heart_rate,
            systolic,
            weight_tenths,
            infant: age_days < 730,
        }
    }

    fn reading(&self, rng: &mut SplitMix64, sign: &VitalSign, irregular: bool) -> Num {
        match sign.loinc {
            "8867-4" => {
                // Atrial fibrillation: an irregular and usually faster rate.
                let (centre, spread) = if irregular {
                    (self.heart_rate.max(75), 20)
                } else {
                    (self.heart_rate, 6)
                };
                Num::Int(centre + rng.below(2 * spread + 1) as u32 - spread as u32)
            }
            "8480-6" => Num::Int(
                (self.systolic + rng.below(17) as u32)
                    .saturating_sub(8)
                    .clamp(85, 200),
            ),
            "29463-7" if self.infant => {
                let hundredths = self.weight_tenths * 10 + rng.below(9) as u32;
                Num::Decimal(hundredths, 2)
            }
            "29463-7" => {
                let jitter = (self.weight_tenths / 50).max(1);
                let v = self.weight_tenths + rng.below(u64::from(2 * jitter + 1)) as u32 - jitter;
                Num::Decimal(v, 1)
            }
            _ => {
                // Temperature: mostly normal, sometimes a fever.
                let tenths = if rng.chance(80) {
                    rng.between(378, 392)
                } else {
                    rng.between(360, 374)
                };
                Num::Decimal(tenths, 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nhs_numbers_cover_all_slots_without_collision() {
        let g = Generator::new(2026);
        let mut seen = std::collections::HashSet::with_capacity(NHS_SLOTS as usize);
        for i in 0..u64::from(NHS_SLOTS) {
            let n = g.nhs_number(i);
            assert!(n.is_test_range());
            assert!(seen.insert(n), "index {i} repeats a number");
        }
        // Beyond the capacity the numbers cycle.
        assert_eq!(g.nhs_number(u64::from(NHS_SLOTS) + 5), g.nhs_number(5));
    }

    #[test]
    fn ids_are_uuid_v4_shaped_and_distinct() {
        let g = Generator::new(1);
        let mut seen = std::collections::HashSet::new();
        for index in [0u64, 1, 2, 999_999, ORGANIZATION_INDEX] {
            for ordinal in 0..30u16 {
                let id = g.resource_id(index, ordinal).to_string();
                let b = id.as_bytes();
                assert_eq!(b.len(), 36);
                assert_eq!((b[8], b[13], b[18], b[23]), (b'-', b'-', b'-', b'-'));
                assert_eq!(b[14], b'4');
                assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'));
                assert!(
                    id.bytes()
                        .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                );
                assert!(seen.insert(id));
            }
        }
    }

    #[test]
    fn practices_are_well_formed() {
        for seed in 0..50 {
            let g = Generator::new(seed);
            assert!((5..=10).contains(&g.practices.len()));
            let mut codes: Vec<&str> = g.practices.iter().map(|p| p.ods.as_str()).collect();
            codes.sort_unstable();
            codes.dedup();
            assert_eq!(codes.len(), g.practices.len(), "ODS codes must differ");
            for p in &g.practices {
                let c = p.ods.as_str().as_bytes();
                assert_eq!(c.len(), 6);
                assert!(c[0].is_ascii_uppercase() && c[1..].iter().all(u8::is_ascii_digit));
            }
        }
    }

    #[test]
    fn ages_span_zero_to_one_hundred_and_skew_old() {
        let mut rng = SplitMix64::new(3);
        let ages: Vec<u32> = (0..20_000).map(|_| sample_age(&mut rng)).collect();
        assert_eq!(*ages.iter().min().unwrap(), 0);
        assert_eq!(*ages.iter().max().unwrap(), 100);
        let old = ages.iter().filter(|a| **a >= 65).count();
        assert!((6_500..8_700).contains(&old), "{old}");
    }
}
