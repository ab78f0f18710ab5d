"""Plain-language labels for every name a reader may see: one registry.

Outcomes, components, groups and quantities carry snake_case names in the
code and in ``estimates.csv``; tables, figures and prose show these labels
instead. :func:`label` falls back to the name with underscores as spaces
for a name the registry does not hold (a scale named in ``instrument.yml``,
say), so a reader never sees a raw identifier.
"""

from __future__ import annotations

OUTCOMES = {
    "confidence": "Confidence in engaging fathers",
    "competence": "Competence in engaging fathers",
    "org_practice": "Organisational practice on father engagement",
    "strategy_effectiveness": "Perceived effectiveness of father-engagement strategies",
    "strategy_frequency": "Frequency of use of father-engagement strategies",
    "father_contact_recorded": "Fathers' contact details recorded in case files",
}
SHORT_OUTCOMES = {
    "confidence": "Confidence",
    "competence": "Competence",
    "org_practice": "Organisational practice",
    "strategy_effectiveness": "Strategy effectiveness",
    "strategy_frequency": "Strategy frequency",
    "father_contact_recorded": "Fathers' contacts recorded",
}
COMPONENTS = {
    "father_engagement": "Father engagement session",
    "motivational_interviewing": "Motivational interviewing session",
    "qa_audit": "Case-file audit training",
    "champion": "Champion training",
    "leaders_webinar": "Senior leaders' webinar",
    "practice_pathway": "Practice pathway (both sessions' places)",
    "system_pathway": "System pathway",
    "all": "All components",
    "places_filled": "All components: places filled (a person counts once per component)",
    "practice_pathway_one": "Practice pathway: staff attending at least one session",
    "practice_pathway_both": "Practice pathway: staff attending both sessions",
    "all_responses": "All components, per response",
    "all_people": "All components, per person",
}
GROUPS = {
    "social_worker": "Social worker",
    "senior_practitioner": "Senior practitioner",
    "team_manager": "Team manager",
    "other": "Other role",
    "under_30": "Under 30",
    "30_39": "30 to 39",
    "40_49": "40 to 49",
    "50_plus": "50 and over",
    "treatment": "Intervention",
    "control": "Control",
    "teams": "Teams",
    "participants": "Staff",
    "setup": "Set-up",
    "delivery": "Delivery",
    "total": "Total",
    "personnel": "Personnel",
    "trainer_fees": "Trainer fees",
    "materials": "Materials",
    "venue": "Venue",
    "travel": "Travel",
    "licences": "Licences",
    "overheads": "Overheads",
    "staff_time": "Staff time (opportunity cost)",
    "developer": "Developer",
    "local_authority": "Local authority",
    "funder": "Funder",
    "age_band": "Age band",
    "role": "Role",
    "experience": "Years qualified",
    "all": "All",
    "baseline": "Baseline",
    "followup": "Follow-up",
}
#: The analyses of the arm effect, as a robustness or comparison table names them (``analysis`` in estimates.csv).
ANALYSES = {
    "primary": "Primary (REML, Kenward-Roger)",
    "sensitivity_satterthwaite": "Primary model, Satterthwaite df (sensitivity)",
    "sensitivity_mi": "Multiple imputation",
    "sensitivity_ri": "Randomisation inference",
    "sensitivity_cr2": "OLS, CR2 cluster-robust",
    "cace": "CACE, both sessions (main)",
    "sensitivity_cace_one_session": "CACE, at least one session (sensitivity)",
}
#: An outcome's role in the protocol.
ROLES = {"primary": "Primary", "secondary": "Secondary", "outcome": "One family (no primary)"}
#: The compliance definitions of the CACE.
COMPLIANCE = {"both": "Both sessions (main)", "one": "At least one session (sensitivity)"}
#: What Works Clearinghouse attrition boundaries.
BOUNDARIES = {"cautious": "Cautious boundary", "optimistic": "Optimistic boundary"}
REGISTRY = {**GROUPS, **COMPONENTS, **OUTCOMES}


def label(name: str, short: bool = False) -> str:
    """The reader's label of ``name``.

    >>> label("org_practice"), label("org_practice", short=True), label("new_scale")
    ('Organisational practice on father engagement', 'Organisational practice', 'New scale')
    """
    name = str(name)
    if short and name in SHORT_OUTCOMES:
        return SHORT_OUTCOMES[name]
    if name in REGISTRY:
        return REGISTRY[name]
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]
