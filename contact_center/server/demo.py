"""Demo accounts, so that a fresh install has someone to sign in as."""

from __future__ import annotations

from contact_center.db.models import Role
from contact_center.identity.users import UserCreate

DEMO_PASSWORD = "harbour-demo"

DEMO_USERS: tuple[UserCreate, ...] = tuple(
    UserCreate(password=DEMO_PASSWORD, **spec)
    for spec in (
        {"username": "alice", "role": Role.CUSTOMER, "display_name": "Alice Smith", "languages": ["en"]},
        {"username": "chan", "role": Role.CUSTOMER, "display_name": "陳大文 Chan Tai Man", "languages": ["yue", "en"], "vip": True},
        {"username": "emma", "role": Role.ADVISOR, "display_name": "Emma Clarke", "languages": ["en"],
         "skills": {"cards": 4, "fx": 3, "accounts": 3, "general": 3}},
        {"username": "wong", "role": Role.ADVISOR, "display_name": "黃家明 Wong Ka Ming", "languages": ["yue"],
         "skills": {"cards": 3, "remittance": 4, "general": 3}},
        {"username": "li", "role": Role.ADVISOR, "display_name": "李娜 Li Na", "languages": ["zh"],
         "skills": {"fx": 4, "remittance": 3, "investments": 3, "general": 3}},
        {"username": "ken", "role": Role.ADVISOR, "display_name": "Ken Lau", "languages": ["en", "yue", "zh"],
         "skills": {"loans": 4, "investments": 4, "complaints": 3, "general": 2},
         "capacity": {"text": 4, "voice": 1, "video": 1}},
        {"username": "sophie", "role": Role.ADVISOR, "display_name": "Sophie Zhang", "languages": ["en", "zh"],
         "skills": {"complaints": 4, "accounts": 4, "cards": 2, "general": 3}},
        {"username": "sam", "role": Role.SUPERVISOR, "display_name": "Sam Patel", "languages": ["en"]},
        {"username": "carol", "role": Role.COMPLIANCE, "display_name": "Carol Ng", "languages": ["en", "yue"]},
        {"username": "admin", "role": Role.ADMIN, "display_name": "Administrator", "languages": ["en"]},
    )
)
