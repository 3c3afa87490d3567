"""Sets of ../shared/faces photos that several tests build an event from."""

# Single faces and group shots of two guests (Barack Obama, Joe Biden), singles and groups
# alternating, so any prefix of the uploads holds both kinds.
OBAMA_AND_BIDEN = [
    "obama_2.jpg",
    "group_two_people.jpg",
    "obama_3.jpg",
    "group_obama_and_biden.jpg",
    "obama_4.jpg",
    "biden_1.jpg",
]
